"""A webhook receiver on loopback: records every request (headers and raw body), and can
answer 500 for the first N requests or take its time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from llm_servers import free_port, serving


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Receiver:
    base: str
    fail_first: int = 0
    delay: float = 0
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.received.append(
            Received(request.url.path, dict(request.headers), await request.body())
        )
        if request.url.path == "/redirect":
            return RedirectResponse("/hook", status_code=307)
        if request.url.path == "/slow":
            await asyncio.sleep(self.delay)
        if len(self.received) <= self.fail_first or request.url.path == "/broken":
            return JSONResponse({"error": "not today"}, status_code=500)
        return JSONResponse({"ok": True})

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def types(self, path: str = "/hook") -> list[str]:
        return [r.json["type"] for r in self.on(path)]

    async def wait_for(self, count: int, path: str = "/hook", timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.on(path)) < count:
                await asyncio.sleep(0.02)


@contextmanager
def receiver() -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}")
    routes = [
        Route(p, state.handle, methods=["POST"])
        for p in ("/hook", "/slow", "/broken", "/redirect", "/other")
    ]
    with serving(Starlette(routes=routes), port):
        yield state
