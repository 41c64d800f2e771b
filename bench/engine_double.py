"""An OpenAI-compatible chat server that answers every request with the same few tokens
after a fixed delay: a stand-in for a remote inference server, so that a benchmark of
Personae's own turn handling is not a benchmark of a model.

    python -m uvicorn --app-dir bench engine_double:app --port 9000

`ENGINE_DOUBLE_SECONDS` (default 0.5) is the time a whole answer takes, spread over its
`ENGINE_DOUBLE_TOKENS` (default 8) streamed pieces.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SECONDS = float(os.environ.get("ENGINE_DOUBLE_SECONDS", "0.5"))
TOKENS = int(os.environ.get("ENGINE_DOUBLE_TOKENS", "8"))
WORDS = ["Aye", ",", " the", " sea", " is", " calm", " today", "."]


def _chunk(delta: dict[str, str], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return "data: " + json.dumps({"object": "chat.completion.chunk", "choices": [choice]}) + "\n\n"


async def completions(request: Request) -> Response:
    body = await request.json()
    pieces = [
        WORDS[i % len(WORDS)] for i in range(min(TOKENS, int(body.get("max_tokens", TOKENS))))
    ]
    prompt_tokens = sum(len(m.get("content", "")) // 4 + 4 for m in body.get("messages", []))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces)}
    if not body.get("stream"):
        await asyncio.sleep(SECONDS)
        message = {"role": "assistant", "content": "".join(pieces)}
        return JSONResponse(
            {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}
        )

    async def events() -> AsyncIterator[str]:
        started = time.monotonic()
        for i, piece in enumerate(pieces, 1):
            await asyncio.sleep(max(0.0, started + SECONDS * i / len(pieces) - time.monotonic()))
            yield _chunk({"content": piece})
        yield _chunk({}, "stop")
        yield "data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "double", "object": "model"}]})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models),
    ]
)
