"""`Idempotency-Key` on every POST of both dialects, as pure ASGI middleware.

For a POST that carries the header and a valid API key, the middleware reads the body,
claims the key for the account (idempotency/service.py) and then either lets the request
run, capturing its response, or answers itself: the stored response of the first request
(with `Idempotent-Replayed: true`), or 409 while that request runs or when the key went
with another request. It sits inside the rate-limit headers middleware: the answers it
gives itself count against the plan's limit and carry its headers, like any other.

What is stored: a 2xx response, once its last byte is ready and before that byte goes to
the client (so a client that saw the answer never sees the key still running). An error
response (4xx, 5xx, a client gone: 499) releases the key instead, because in Personae an
error leaves no work behind and a retry should run. A streamed turn (`text/event-stream`)
is stored only if it ended with its `message` event, condensed to one `delta` with the
whole text and that event (api/sse.py), which is what a retry gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Coroutine
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.dialect import error_response
from personae.api.errors import database_busy
from personae.api.middleware import replaying
from personae.api.sse import final_stream
from personae.errors import PersonaeError, Unauthorized
from personae.idempotency.service import Claimed, IdempotencyKeys, StoredResponse
from personae.models import Account
from personae.state import AppState

log = logging.getLogger("personae")

REPLAYED_HEADER = "Idempotent-Replayed"
# Headers that describe one delivery of a response, not the response: never stored.
_NOT_STORED = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"date",
        b"server",
        b"set-cookie",
        b"retry-after",
        b"x-ratelimit-limit",
        b"x-ratelimit-remaining",
        b"x-ratelimit-reset",
    }
)
_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
# Releases that must finish even if the request that started them is cancelled.
_background: set[asyncio.Task[None]] = set()


def presented_key(headers: Headers) -> str | None:
    """The API key a request presents, read the way `api/deps.authenticate` reads it."""
    if api_key := headers.get("x-api-key"):
        return api_key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


def fingerprint(scope: Scope, headers: Headers, body: bytes) -> str:
    """SHA-256 of what makes two requests the same one: method, path and query, media type
    and body. A JSON body is compared as JSON (key order and spacing aside), a multipart
    body without its boundary (a client that encodes the retry afresh picks a new one)."""
    content_type = headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json":
        # Not JSON after all, or nested too deep (the route will say so): bytes are compared.
        with contextlib.suppress(ValueError, RecursionError):
            body = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
    elif media_type == "multipart/form-data" and (found := _BOUNDARY_RE.search(content_type)):
        body = body.replace(b"--" + found.group(1).encode("latin-1"), b"--BOUNDARY")
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope["query_string"].decode("latin-1")):
        digest.update(part.encode() + b"\0")
    digest.update(media_type.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def storable(
    status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes
) -> StoredResponse | None:
    """The response as a retry should get it, or None if it must not be kept."""
    if not 200 <= status < 300:
        return None
    headers = Headers(raw=raw_headers)
    if headers.get("content-type", "").startswith("text/event-stream"):
        condensed = final_stream(body)
        if condensed is None:
            return None
        body = condensed
    kept = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw_headers
        if name.lower() not in _NOT_STORED
    ]
    return StoredResponse(status, kept, body)


def replay(stored: StoredResponse) -> ASGIApp:
    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in stored.headers
        ]
        headers += [
            (b"content-length", str(len(stored.body)).encode()),
            (REPLAYED_HEADER.lower().encode(), b"true"),
        ]
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": stored.body})

    return respond


class IdempotencyMiddleware:
    """Claims, replays and stores `Idempotency-Key`s of POST requests (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("idempotency-key")
        presented = presented_key(headers)
        if key is None or presented is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before it finished sending
        receive = replaying(body, receive)
        path = scope["path"]
        state: AppState = scope["app"].state.personae
        try:
            account = await _account(state, presented)
        except Exception as exc:
            await _failed(exc, path)(scope, receive, send)
            return
        if account is None:  # the route's own authentication answers 401
            await self.app(scope, receive, send)
            return
        query = scope["query_string"].decode("latin-1")
        request = f"for POST {path}" + (f"?{query}" if query else "")
        try:
            outcome = await state.idempotency.begin(
                account.id, key, fingerprint(scope, headers, body), request
            )
        except Exception as exc:
            await _answer(state, account, _failed(exc, path), scope, receive, send)
            return
        if isinstance(outcome, StoredResponse):
            await _answer(state, account, replay(outcome), scope, receive, send)
            return
        await self._run(state.idempotency, outcome, scope, receive, send)

    async def _run(
        self, keys: IdempotencyKeys, claimed: Claimed, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run the request, then store its response or release the key, before the
        response's last byte leaves."""
        status = 0
        raw_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        finished = False

        async def capture(message: Message) -> None:
            nonlocal status, raw_headers, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                raw_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body" and not finished:
                if 200 <= status < 300:
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished = True
                    await _settle(keys, claimed, storable(status, raw_headers, b"".join(chunks)))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not finished:  # the request failed without an answer, or was cancelled
                await _shielded(_settle(keys, claimed, None))


def _failed(exc: Exception, path: str) -> ASGIApp:
    """The answer to an error of the middleware's own work, in the dialect's shape."""
    error = exc if isinstance(exc, PersonaeError) else database_busy(exc)
    if error is None:
        log.exception("idempotency key lookup failed on POST %s", path, exc_info=exc)
        error = PersonaeError()
    return error_response(path, error)


async def _account(state: AppState, presented: str) -> Account | None:
    try:
        return await state.authenticator.account(presented)
    except Unauthorized:
        return None


async def _answer(
    state: AppState,
    account: Account,
    answer: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """An answer of the middleware's own: counted against the plan's per-minute limit like
    any request (the route's authentication, which counts the others, does not run)."""
    try:
        result = await state.limiter.hit(account.id, account.effective_rate_limit)
    except PersonaeError as error:  # the limiter's Redis is down: 503
        answer = error_response(scope["path"], error)
    else:
        scope.setdefault("state", {})["rate_limit_headers"] = result.headers()
        if not result.allowed:
            answer = error_response(scope["path"], result.error())
    await answer(scope, receive, send)


async def _settle(keys: IdempotencyKeys, claimed: Claimed, response: StoredResponse | None) -> None:
    """Store the response, or release the key. A failure is logged and the response still
    goes out; a key whose response could not be stored stays held (409 for retries) until
    it expires or this process stops, rather than let the work run twice."""
    try:
        if response is None:
            await keys.release(claimed)
        else:
            await keys.complete(claimed, response)
    except Exception:
        log.exception("could not %s an idempotency key", "release" if response is None else "store")


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if this request is being cancelled (a shutdown)."""
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.shield(task)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
