"""The baseline of bench_overhead.py: a bare Starlette app, served by the same uvicorn as
Personae, with an endpoint that sleeps as long as the engine double takes and one that
returns a JSON body the size and shape of `GET /v1/user/me`.

    python -m uvicorn --app-dir bench bare_starlette:app --port 9001

`ENGINE_DOUBLE_SECONDS` is the sleep, as for the engine double.
"""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECONDS = float(os.environ.get("ENGINE_DOUBLE_SECONDS", "0.05"))
ME = {
    "id": "user_8b1d3c0f2a4e4d6b9c7e5f1a3b2d4c6e",
    "username": "overhead",
    "email": None,
    "created_at": "2026-11-24T08:00:00.000000Z",
    "balance": 0.0,
    "subscription": {
        "plan": "enterprise",
        "chat_requests": {"used": 1234, "limit": 10000000, "reset_date": "2026-12-01T00:00:00Z"},
    },
    "stats": {"characters_created": 1, "conversations": 300, "favorites": 0},
}


async def sleep(request: Request) -> Response:
    await request.body()
    await asyncio.sleep(SECONDS)
    return JSONResponse({"content": "Aye, the sea is calm today."})


async def me(request: Request) -> Response:
    return JSONResponse(ME)


app = Starlette(routes=[Route("/sleep", sleep, methods=["POST"]), Route("/me", me)])
