"""Pure ASGI middleware (no BaseHTTPMiddleware, so streaming responses stay streaming)."""

from __future__ import annotations

import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.dialect import error_response
from personae.errors import HeadersTooLarge, InvalidRequest, PayloadTooLarge, PersonaeError

log = logging.getLogger("personae")

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` that hands the app the body read already, then the client's next messages."""
    replayed = False

    async def replay_body() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay_body


class BodyLimitMiddleware:
    """Refuses bodies over a cap with 413 before any handler reads them.

    The cap is checked against `Content-Length` first and then against the bytes that
    actually arrive (a chunked body has no length), so a lying client gains nothing.
    `multipart/form-data` bodies get their own, larger, cap (uploads).
    """

    def __init__(self, app: ASGIApp, json_cap: int, multipart_cap: int) -> None:
        self.app = app
        self.json_cap = json_cap
        self.multipart_cap = multipart_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        is_multipart = headers.get("content-type", "").startswith("multipart/form-data")
        cap = self.multipart_cap if is_multipart else self.json_cap
        declared = headers.get("content-length")
        path = scope["path"]
        if declared is not None:
            if not declared.isdigit():
                await error_response(path, InvalidRequest("Invalid Content-Length"))(
                    scope, receive, send
                )
                return
            if int(declared) > cap:
                await self._too_large(scope, receive, send, cap)
                return

        # Read the whole body (bounded by the cap) and replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await self._too_large(scope, receive, send, cap)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        error = PayloadTooLarge(
            f"Request body exceeds the limit of {cap} bytes", details={"limit_bytes": cap}
        )
        await error_response(scope["path"], error)(scope, receive, send)


class HeaderLimitMiddleware:
    """Refuses a request whose headers, names and values together, exceed a cap with 431
    before anything reads them. uvicorn bounds what it buffers only with its h11 parser
    (`personae serve` sets that bound a little above this cap, so that the answer comes
    from here, in the dialect's shape); with httptools it has no bound of its own."""

    def __init__(self, app: ASGIApp, cap: int) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.cap:
                error = HeadersTooLarge(
                    f"Request headers total {size} bytes, over the limit of {self.cap} "
                    "(PERSONAE_MAX_HEADER_BYTES)",
                    details={"limit": "max_header_bytes", "max": self.cap},
                )
                await error_response(scope["path"], error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RateLimitHeadersMiddleware:
    """Copies the rate-limit headers the auth dependency computed onto the response,
    whatever the response is (success, 4xx, 429)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        state = scope.setdefault("state", {})  # the dict `request.state` writes into

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = state.get("rate_limit_headers")
                if extra:
                    headers = MutableHeaders(scope=message)
                    for name, value in extra.items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UnexpectedErrorMiddleware:
    """Turns an unhandled exception into a 500 in the dialect's shape.

    Starlette answers those in its outermost middleware, outside ours, so the response
    would miss the rate-limit headers; this one sits innermost instead. The traceback
    goes to the log, never to the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # too late to answer; let the server close the connection
            await error_response(scope["path"], PersonaeError())(scope, receive, send)
