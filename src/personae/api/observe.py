"""The outermost middleware: a request id for every request, and its metrics.

* The id is the client's `X-Request-Id` when that is a token of at most 64 characters
  (letters, digits, `.`, `_`, `:`, `-`); otherwise a new one. Every response carries it
  back in `X-Request-Id`, every log record written while the request runs carries it
  (observability/logs.py), and so do the image jobs and webhook events it causes (their
  rows keep it: the worker's log lines for them carry it, and a delivery sends it).
* `personae_http_requests_total` and `personae_http_request_duration_seconds` count the
  request under its route template (`/v1/chat/{character_id}/messages`, never the path
  itself, so that ids do not become label values) or `unmatched`.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.dialect import AGENTS_PREFIX, CHARACTERS_PREFIX, OPENAI_PREFIX, dialect_of, under
from personae.observability import metrics
from personae.observability.logs import carrying_request_id

REQUEST_ID_HEADER = "X-Request-Id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
UNMATCHED = "unmatched"


def request_id_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            if _VALID_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def dialect_label(path: str) -> str:
    """The dialect a path belongs to, or `other` (`/health`, `/files/...`): the error
    shapes' `dialect_of` counts those as characters, a metric should not."""
    if any(under(path, p) for p in (AGENTS_PREFIX, CHARACTERS_PREFIX, OPENAI_PREFIX)):
        return dialect_of(path).value
    return "other"


class ObserveRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            with carrying_request_id(request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method, dialect = scope["method"], dialect_label(scope["path"])
            metrics.HTTP_REQUESTS.labels(method, template, dialect, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, template, dialect).observe(
                time.perf_counter() - started
            )
            state = getattr(scope["app"].state, "personae", None)  # None before start-up
            if state is not None:
                metrics.DB_CONNECTIONS_IN_USE.set(state.connections_in_use())
