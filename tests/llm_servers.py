"""Real model servers on loopback for the engine tests: llama.cpp's own OpenAI-compatible
server (the build `make install` made) with the bundled GGUF, and a small HTTP server that
fails on purpose (a stand-in for a remote engine that is down, broken or slow)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import IO, Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from personae.engines.llm.llama_cpp import LlamaCppEngine
from personae.engines.llm.native import resolve_path, server_binary

GGUF = str(resolve_path("builtin:smollm2"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_cpp_server() -> Iterator[str]:
    """llama.cpp's `llama-server` on a loopback port serving the bundled GGUF, as an operator
    would run one; yields its /v1 base URL."""
    port = free_port()
    command = [
        str(server_binary()), "--model", GGUF, "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", "4096", "--parallel", "2", "--alias", "smollm2", "--no-webui",
    ]  # fmt: skip
    # llama.cpp logs a lot: into a file, since a full pipe would block the server. Its
    # standard input stays open (a pipe): llama-server exits when it closes.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log
        )
        base = f"http://127.0.0.1:{port}/v1"
        try:
            wait_until_serving(f"{base}/models", proc, log, timeout=60)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def wait_until_serving(
    url: str, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float
) -> None:
    """Return once `url` answers 200; RuntimeError with the end of the process's log if it
    exits first or takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(
                f"{url} did not come up: {log.read()[-3000:].decode(errors='replace')}"
            )
        time.sleep(0.1)


async def _fail_500(request: Request) -> Response:
    return JSONResponse({"error": {"message": "model crashed"}}, status_code=500)


async def _slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return JSONResponse({})


# What /scripted/v1/chat/completions streams, whatever it is asked: a server that ignores
# stop sequences, and a model that labels itself, speaks for the user and leaks template
# tokens. The request bodies it got are kept in SCRIPTED_REQUESTS.
SCRIPT = ["Vexa", " Stride:", " Hi", " there.", "<|im", "_end|>", "\nUser: I say", " more"]
SCRIPTED_REQUESTS: list[dict[str, Any]] = []


async def _scripted(request: Request) -> Response:
    SCRIPTED_REQUESTS.append(await request.json())

    async def events() -> AsyncIterator[str]:
        for piece in SCRIPT:
            chunk = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        usage = {"prompt_tokens": 20, "completion_tokens": len(SCRIPT)}
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


# /trickle/v1/chat/completions streams TRICKLE_PIECES words, one every TRICKLE_SECONDS (a
# slow model: 20 s in all), and counts in TRICKLE_CLOSED the streams whose client hung up.
TRICKLE_PIECES = 200
TRICKLE_SECONDS = 0.1
TRICKLE_CLOSED: list[int] = []


async def _trickle(request: Request) -> Response:
    async def events() -> AsyncIterator[str]:
        sent, finished = 0, False
        try:
            for _ in range(TRICKLE_PIECES):
                chunk = {"choices": [{"delta": {"content": " word"}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
                sent += 1
                await asyncio.sleep(TRICKLE_SECONDS)
            usage = {"prompt_tokens": 20, "completion_tokens": TRICKLE_PIECES}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
            finished = True
        finally:
            if not finished:  # the client closed the stream
                TRICKLE_CLOSED.append(sent)

    return StreamingResponse(events(), media_type="text/event-stream")


# /paced/v1/chat/completions streams one word every PACED_SECONDS, as many as `max_tokens`
# asks: a model whose answer takes a known time.
PACED_SECONDS = 0.1


async def _paced(request: Request) -> Response:
    pieces = int((await request.json()).get("max_tokens") or 16)

    async def events() -> AsyncIterator[str]:
        for _ in range(pieces):
            chunk = {"choices": [{"delta": {"content": " word"}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(PACED_SECONDS)
        usage = {"prompt_tokens": 20, "completion_tokens": pieces}
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@contextmanager
def failing_server() -> Iterator[str]:
    """An HTTP server whose /fail/v1/chat/completions answers 500, /slow/v1/... hangs,
    /scripted/v1/... streams SCRIPT, /trickle/v1/... streams slowly and /paced/v1/...
    streams `max_tokens` words at a known pace."""
    app = Starlette(
        routes=[
            Route("/fail/v1/chat/completions", _fail_500, methods=["POST"]),
            Route("/slow/v1/chat/completions", _slow, methods=["POST"]),
            Route("/scripted/v1/chat/completions", _scripted, methods=["POST"]),
            Route("/trickle/v1/chat/completions", _trickle, methods=["POST"]),
            Route("/paced/v1/chat/completions", _paced, methods=["POST"]),
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


async def idle_slot(engine: LlamaCppEngine, timeout: float = 30) -> dict[str, Any]:
    """The embedded engine's first slot, once it has stopped processing (`GET /slots` of
    the llama-server behind it)."""
    assert engine.process is not None
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(transport=engine.process.transport()) as client:
        while True:
            slots = (await client.get("http://engine/slots")).json()
            if not slots[0]["is_processing"] or time.monotonic() > deadline:
                assert not slots[0]["is_processing"], "the engine is still generating"
                return dict(slots[0])
            await asyncio.sleep(0.05)
