"""Server-Sent Events for generation: `delta` events with text, then one `message` event
with the stored message in the dialect's shape (or one `error` event)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from personae.api.dialect import dialect_of, error_body
from personae.api.errors import database_busy
from personae.conversation.chat import PreparedTurn, TurnResult
from personae.engines.llm.base import Delta
from personae.errors import PersonaeError

log = logging.getLogger("personae")
T = TypeVar("T")
#: what nginx logs for a request whose client closed the connection before the answer
CLIENT_CLOSED_REQUEST = 499
#: the last event of an OpenAI-dialect stream that finished (never sent after an error)
OPENAI_DONE = b"data: [DONE]\n\n"


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator however the response ends. Starlette leaves the iterator
    to the garbage collector when the client disconnects; closing it at once is what
    stops the generation behind it (the turn's `finally` tells the engine)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


def stream_turn(
    turn: PreparedTurn, path: str, render: Callable[[TurnResult], dict[str, Any]]
) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        try:
            async for event in turn.stream():
                if isinstance(event, Delta):
                    yield _event("delta", {"content": event.text})
                else:
                    yield _event("message", render(event))
        except PersonaeError as exc:
            yield _event("error", error_body(dialect_of(path), exc))
        except Exception as exc:  # the response has started: report in-band, log the cause
            busy = database_busy(exc)
            if busy is None:
                log.exception("generation failed mid-stream on %s", path)
            yield _event("error", error_body(dialect_of(path), busy or PersonaeError()))

    return ClosingStreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# OpenAPI: generating endpoints answer JSON, or SSE with `"stream": true`, and what a turn
# may answer besides (error bodies are the dialect's, filled in by `api/openapi.py`).
STREAM_RESPONSES: dict[int | str, Any] = {
    200: {"content": {"text/event-stream": {}}, "description": "With `stream`: SSE events."},
    402: {"description": "The balance cannot pay for the turn"},
    409: {"description": "The conversation's model is no longer offered (`model_unavailable`)"},
    502: {"description": "The model engine failed"},
    503: {"description": "The model engine is unavailable or at capacity"},
    504: {"description": "The model engine timed out"},
}


async def respond(
    turn: PreparedTurn, stream: bool, request: Request, render: Callable[[TurnResult], BaseModel]
) -> BaseModel | Response:
    """The turn's answer: generated now and rendered, or streamed as it is generated.

    Either way, a client that goes away stops the generation: a stream is closed by its
    response; a plain request is watched for the disconnect while the turn runs, and the
    turn is cancelled (released like a dropped stream: nothing stored, nothing charged)."""
    path = request.url.path
    if stream:
        return stream_turn(turn, path, lambda result: render(result).model_dump(mode="json"))
    result = await until_disconnected(turn.run(), request)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return render(result)


async def until_disconnected(work: Awaitable[T], request: Request) -> T | None:
    """`work`'s result, or None (with `work` cancelled) if the client disconnects first.

    The body has been read by now, so the next ASGI message is the disconnect."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request itself was cancelled
        task.cancel()
        watcher.cancel()
        raise
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def final_stream(recorded: bytes) -> bytes | None:
    """A finished stream told again in brief (what an idempotent retry gets back): one
    `delta` with the whole text, then the stream's `message` event as it was sent. None for
    a stream that did not end with its message (an `error` event, or cut short).

    An OpenAI-dialect stream (`data:` lines only, dialects/openai) that ended with its
    `[DONE]` is kept as it was sent: its chunks are small, and its clients read them all."""
    if recorded.endswith(OPENAI_DONE):
        return recorded
    text: list[str] = []
    message: bytes | None = None
    for block in recorded.split(b"\n\n"):
        if not block.strip():
            continue
        fields: dict[bytes, bytes] = {}
        for line in block.split(b"\n"):
            field, _, value = line.partition(b": ")
            fields[field] = value
        name = fields.get(b"event")
        if name == b"delta":
            text.append(json.loads(fields[b"data"])["content"])
        elif name == b"message":
            message = block + b"\n\n"
        else:
            return None
    if message is None:
        return None
    return (_event("delta", {"content": "".join(text)}) if text else b"") + message
