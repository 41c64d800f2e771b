"""Server-Sent Events for generation: `delta` events with text, then one `message` event
with the stored message in the dialect's shape (or one `error` event)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from personae.api.dialect import dialect_of, error_body
from personae.conversation.chat import PreparedTurn, TurnResult
from personae.engines.llm.base import Delta
from personae.errors import PersonaeError

log = logging.getLogger("personae")


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


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
        except Exception:  # the response has started: report in-band, log the cause
            log.exception("generation failed mid-stream on %s", path)
            yield _event("error", error_body(dialect_of(path), PersonaeError()))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
