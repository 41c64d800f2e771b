"""Response headers every answer carries, CORS, and refusing API keys in URLs.

* `SecurityHeadersMiddleware`: `X-Content-Type-Options: nosniff` on every response and
  `Cache-Control: no-store` on every response that sets no caching of its own (files do:
  `api/files.py`), so no shared or browser cache keeps an answer that carries a
  conversation, an account or a webhook secret.
* `QueryKeyMiddleware`: a request with an API key in its query string is refused (400, in
  the dialect's shape) before it is authenticated or counted; a URL ends up in access
  logs, proxies' logs and browser histories, so the key should be revoked.
* `add_cors`: Starlette's CORS middleware for the origins in
  `PERSONAE_CORS_ALLOWED_ORIGINS` (none by default: no browser page may call the API).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.dialect import error_response
from personae.config import Settings
from personae.errors import InvalidRequest
from personae.redact import key_in_query, redact

NO_STORE = "no-store"

# What a browser page may send and read across origins.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_REQUEST_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"]
CORS_EXPOSED_HEADERS = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Idempotent-Replayed",
]
CORS_MAX_AGE = 600


class SecurityHeadersMiddleware:
    """`nosniff` on every response; `no-store` unless the response chose its caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if "cache-control" not in headers:
                    headers["Cache-Control"] = NO_STORE
            await send(message)

        await self.app(scope, receive, send_with_headers)


class QueryKeyMiddleware:
    """400 for an API key in the query string (`?api_key=`, `?key=`, or any value shaped
    like a key), whatever the route, before authentication or rate limiting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            query = scope["query_string"].decode("latin-1")
            name = key_in_query(query)
            if name is not None:
                error = InvalidRequest(
                    "API keys are not accepted in the query string: send "
                    "`Authorization: Bearer KEY` or `X-API-Key: KEY`. A key sent in a URL may "
                    "have been logged along the way; revoke it and create another.",
                    details={"parameter": redact(name)[:100]},
                )
                await error_response(scope["path"], error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Answer CORS preflights and mark responses for the configured origins. With none
    configured nothing is added: a preflight is an OPTIONS like any other and browsers
    refuse the cross-origin call. No credentials mode: the API's keys are headers that a
    page sends on purpose, never cookies a browser would attach by itself."""
    origins = settings.cors_origins
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=CORS_MAX_AGE,
    )
