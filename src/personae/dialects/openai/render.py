"""A turn told as OpenAI tells a chat completion: one `chat.completion` object, or a stream
of `chat.completion.chunk` objects ending in `data: [DONE]`."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import StreamingResponse

from personae.api.dialect import Dialect, error_body
from personae.api.errors import database_busy
from personae.api.sse import OPENAI_DONE, ClosingStreamingResponse
from personae.conversation.chat import PreparedTurn, TurnResult
from personae.dialects.openai.schemas import (
    ChatCompletion,
    CompletionChoice,
    CompletionMessage,
    CompletionUsage,
)
from personae.engines.llm.base import Delta
from personae.errors import PersonaeError

log = logging.getLogger("personae")


def finish_reason(reason: str) -> Literal["stop", "length"]:
    """OpenAI's reason for the engine's: an answer cut off by its length or by the
    generation time limit is `length`; every other end is `stop`."""
    return "length" if reason in ("length", "time_limit") else "stop"


def usage(result: TurnResult) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )


def _data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


@dataclass(frozen=True)
class Completion:
    """What every object of one answer shares: its id, its time, the model as asked for."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{secrets.token_hex(12)}")
    created: int = field(default_factory=lambda: int(time.time()))

    def answer(self, result: TurnResult) -> ChatCompletion:
        choice = CompletionChoice(
            message=CompletionMessage(content=result.content),
            finish_reason=finish_reason(result.finish_reason),
        )
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=usage(result),
        )

    def chunk(self, delta: dict[str, str], reason: str | None = None) -> bytes:
        return _data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
                ],
            }
        )

    def usage_chunk(self, result: TurnResult) -> bytes:
        return _data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage(result).model_dump(),
            }
        )

    def stream(self, turn: PreparedTurn, include_usage: bool) -> StreamingResponse:
        """The turn as OpenAI streams: a chunk with the role, one per piece of text, one
        with the finish reason, the usage (if asked for), then `[DONE]`. A failure once the
        stream has started is one `data:` chunk with the error object, and no `[DONE]`
        (OpenAI's SDKs raise it)."""

        async def chunks() -> AsyncIterator[bytes]:
            yield self.chunk({"role": "assistant", "content": ""})
            try:
                async for event in turn.stream():
                    if isinstance(event, Delta):
                        yield self.chunk({"content": event.text})
                        continue
                    yield self.chunk({}, finish_reason(event.finish_reason))
                    if include_usage:
                        yield self.usage_chunk(event)
            except PersonaeError as exc:
                yield _data(error_body(Dialect.OPENAI, exc))
                return
            except Exception as exc:  # the response has started: report in-band, log it
                busy = database_busy(exc)
                if busy is None:
                    log.exception("generation failed mid-stream on the OpenAI endpoint")
                yield _data(error_body(Dialect.OPENAI, busy or PersonaeError()))
                return
            yield OPENAI_DONE

        return ClosingStreamingResponse(
            chunks(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
