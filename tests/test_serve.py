"""`personae serve` runs a real server: real sockets, real process, migrations on start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = os.environ | {"PERSONAE_DATA_DIR": str(tmp_path), "PERSONAE_PORT": str(port)}
    env.pop("PERSONAE_DATABASE_URL", None)
    env.pop("PERSONAE_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "personae", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"server did not start:\n{out}")
            time.sleep(0.1)
        yield base, env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_readme_first_steps_over_real_http(server: tuple[str, dict[str, str]]) -> None:
    base, env = server
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "personae",
            "accounts",
            "create",
            "--username",
            "newcomer",
            "--plan",
            "standard",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(created.stdout)["api_key"]
    me = httpx.get(f"{base}/v1/user/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["username"] == "newcomer"
    assert me.headers["X-RateLimit-Limit"] == "150"
    anonymous = httpx.get(f"{base}/v1/user/me")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    anonymous = httpx.get(f"{base}/api/v1/models?type=llm")
    assert anonymous.status_code == 401
    assert isinstance(anonymous.json()["error"], str)


def test_a_fresh_server_chats_in_character_in_both_dialects(
    server: tuple[str, dict[str, str]],
) -> None:
    base, env = server
    created = subprocess.run(
        [sys.executable, "-m", "personae", "accounts", "create", "--username", "chatter",
         "--plan", "standard", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = {"X-API-Key": json.loads(created.stdout)["api_key"]}
    models = httpx.get(f"{base}/api/v1/models?type=llm", headers=key).json()
    assert [m["name"] for m in models] == ["SmolLM2-135M-Instruct (embedded)"]
    character = httpx.post(
        f"{base}/v1/characters",
        json={"name": "Vexa", "description": "A courier", "personality": "Defiant",
              "background": "The slums"},
        headers=key,
    ).json()  # fmt: skip
    answer = httpx.post(
        f"{base}/v1/chat/{character['id']}/messages",
        json={"message": "Who are you?", "max_tokens": 12},
        headers=key,
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"].strip()
    follow_up = httpx.post(
        f"{base}/api/v1/conversations/{answer.json()['conversation_id']}/messages",
        json={"content": "Where do you live?", "max_tokens": 12},
        headers={"Authorization": f"Bearer {key['X-API-Key']}"},
        timeout=120,
    )
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.json()["role"] == "agent"
