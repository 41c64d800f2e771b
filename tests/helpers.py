"""Assertions shared by the HTTP tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx

from personae.account.service import Credentials


def bearer(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.plaintext}"}


def x_api_key(creds: Credentials) -> dict[str, str]:
    return {"X-API-Key": creds.plaintext}


def agents_error(response: httpx.Response, status: int) -> str:
    """The agents API's `{"error": "message"}`; returns the message."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    return body["error"]


def characters_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The characters API's `{"error": {code, message, status, details}}`; returns the inner."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "status", "details"}, error
    assert error["code"] == code, error
    assert error["status"] == status
    assert error["message"]
    return error


def openai_error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The OpenAI-compatible endpoint's `{"error": {message, type, param, code}}`; returns
    the inner object."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == kind, error
    assert error["message"]
    return error


def rate_limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["X-RateLimit-Limit"]), int(h["X-RateLimit-Remaining"]), int(h["X-RateLimit-Reset"])


async def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    """Return once `condition()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def generating(app: Any, turns: int) -> Callable[[], bool]:
    """A condition: the app's one loaded engine is decoding `turns` turns (or more)."""

    def check() -> bool:
        engines = app.state.personae.llm_engines.loaded()
        return bool(engines) and next(iter(engines.values())).admission.active >= turns

    return check


def post_scope(
    path: str, headers: list[tuple[bytes, bytes]], spec_version: str = "2.4"
) -> dict[str, Any]:
    """The ASGI scope of a POST, for tests that drive the app at the ASGI level (to play a
    client that goes away)."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip


def json_post_scope(path: str, creds: Credentials, spec_version: str = "2.4") -> dict[str, Any]:
    """A JSON POST with the characters API's key header."""
    headers = [(b"content-type", b"application/json"), (b"x-api-key", creds.plaintext.encode())]
    return post_scope(path, headers, spec_version)


async def leave_after_first_chunk(
    app: Any,
    scope: dict[str, Any],
    body: bytes,
    expected: tuple[type[BaseException], ...] = (Exception,),
) -> bool:
    """Send `body`, then go away once the response's first chunk arrives, the way servers
    report it: a disconnect message before ASGI 2.4, a failing send after (`expected`: how
    the app may end meanwhile). Whether a chunk came at all."""
    first_chunk = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            if first_chunk.is_set() and scope["asgi"]["spec_version"] == "2.4":
                raise OSError("client went away")
            first_chunk.set()

    with contextlib.suppress(*expected):
        await asyncio.wait_for(app(scope, receive, send), timeout=60)
    return first_chunk.is_set()
