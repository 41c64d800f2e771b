"""`personae serve` runs a real server: real sockets, real process, migrations on start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_server import Server, cli, serving


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as running:
        yield running


def test_readme_first_steps_over_real_http(server: Server) -> None:
    base, env, _ = server
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
    server: Server,
) -> None:
    base, env, _ = server
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


def engine_pids(server_pid: int) -> list[int]:
    """The llama-server processes a server started (its children of that name)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == server_pid and name == "llama-server":
            pids.append(int(entry.name))
    return pids


def priced_chat(base: str, env: dict[str, str]) -> tuple[dict[str, str], str]:
    """A priced copy of the embedded model as the only one, an account with a balance of 10
    (its key header) and a character (its id)."""
    embedded = cli(env, "models", "list")[0]
    cli(env, "models", "add", "--type", "llm", "--name", "Priced", "--engine", "llama_cpp",
        "--path", "builtin:smollm2", "--cost-per-1k-tokens", "1")  # fmt: skip
    cli(env, "models", "disable", embedded["id"])
    created = cli(
        env, "accounts", "create", "--username", "payer", "--plan", "standard", "--balance", "10"
    )
    key = {"X-API-Key": created["api_key"]}
    character = httpx.post(
        f"{base}/v1/characters",
        json={"name": "Vexa", "description": "A courier", "personality": "Defiant",
              "background": "The slums"},
        headers=key,
    ).json()  # fmt: skip
    return key, str(character["id"])


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the engine process in /proc")
def test_a_killed_engine_fails_its_turn_with_503_and_the_server_lives_on(
    server: Server,
) -> None:
    base, env, proc = server
    # A priced model, so that the turn holds part of the balance while it runs.
    key, character = priced_chat(base, env)
    chat = f"{base}/v1/chat/{character}/messages"
    events: list[str] = []
    killed: list[int] = []
    body = {"message": "Tell me a very long story.", "stream": True, "max_tokens": 1500}
    with httpx.stream("POST", chat, json=body, headers=key, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event:"):
                events.append(line.removeprefix("event:").strip())
            if events.count("delta") == 3 and not killed:
                during = httpx.get(f"{base}/v1/user/me", headers=key).json()
                assert during["balance"] < 10  # held while the turn runs
                killed = engine_pids(proc.pid)
                assert killed, "no engine process found"
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
            if line.startswith("data:") and events[-1] == "error":
                error = json.loads(line.removeprefix("data:"))["error"]
    assert events[-1] == "error"
    assert error["status"] == 503
    assert error["code"] == "engine_unavailable"
    # The API process lived through it, and the reservation was given back (by a task
    # that runs once the stream has ended: wait for it).
    assert proc.poll() is None
    deadline = time.monotonic() + 10
    while (me := httpx.get(f"{base}/v1/user/me", headers=key).json())["balance"] != 10:
        assert time.monotonic() < deadline, me
        time.sleep(0.05)
    assert me["subscription"]["chat_requests"]["used"] == 0
    # The engine was restarted (a new process) and the next turn is answered.
    started = time.monotonic()
    answer = httpx.post(chat, json={"message": "Hello?", "max_tokens": 8}, headers=key, timeout=60)
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 30
    assert set(engine_pids(proc.pid)).isdisjoint(killed)
    assert proc.poll() is None

    # Every engine the kill reached is restarted, the chat's own included; an engine of
    # another (disabled) model may come back a moment after the chat's.
    def all_up() -> bool:
        ready = httpx.get(f"{base}/ready").json()
        return all(e["state"] == "up" for e in ready["engines"])

    wait_until(all_up)
    ready = httpx.get(f"{base}/ready").json()
    assert max(e["details"]["restarts"] for e in ready["engines"]) >= 1


def wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_engine_never_outlives_a_killed_server(
    server: Server,
) -> None:
    base, _, proc = server
    wait_until(lambda: httpx.get(f"{base}/ready").json()["engines"] != [])
    (engine,) = engine_pids(proc.pid)
    proc.kill()
    proc.wait()
    wait_until(lambda: not alive(engine), timeout=10)


def kill_after_deltas(
    url: str, body: dict[str, Any], headers: dict[str, str], proc: Any, deltas: int
) -> None:
    """Stream a turn and SIGKILL the server once `deltas` pieces arrived (mid-turn: the
    hold is taken, the answer never stored)."""
    seen = 0
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        for line in response.iter_lines():
            seen += line.startswith("event: delta")
            if seen == deltas:
                proc.kill()


def test_a_server_killed_mid_turn_gives_the_hold_back_after_restart(tmp_path: Path) -> None:
    """SIGKILL the API server during a streamed turn, start it again: the sweep releases
    the abandoned turn (quota and balance back, the message marked unanswered in both
    dialects) and every counter agrees with the rows; the next turn works."""
    beats = {"turn_heartbeat_seconds": "0.5"}
    with serving(tmp_path, **beats) as (base, env, proc):
        key, character = priced_chat(base, env)
        chat = f"{base}/v1/chat/{character}/messages"
        first = httpx.post(chat, json={"message": "Hi", "max_tokens": 4}, headers=key, timeout=60)
        conversation = first.json()["conversation_id"]
        balance_before = httpx.get(f"{base}/v1/user/me", headers=key).json()["balance"]
        body = {"message": "Tell me a very long story.", "stream": True, "max_tokens": 1500,
                "conversation_id": conversation}  # fmt: skip
        with pytest.raises(httpx.TransportError):  # the connection dies with the server
            kill_after_deltas(chat, body, key, proc, 3)
    with serving(tmp_path, **beats) as (base, env, proc):
        deadline = time.monotonic() + 20
        while True:  # the sweep runs once the dead instance missed three beats
            me = httpx.get(f"{base}/v1/user/me", headers=key).json()
            used = me["subscription"]["chat_requests"]["used"]
            if used == 1 and me["balance"] == balance_before:
                break
            assert time.monotonic() < deadline, me
            time.sleep(0.1)
        listed = httpx.get(
            f"{base}/v1/chat/conversations/{conversation}/messages", headers=key
        ).json()["data"]
        assert [m.get("unanswered", False) for m in listed] == [True, False, False]
        agents = httpx.get(
            f"{base}/api/v1/conversations/{conversation}/messages",
            headers={"Authorization": f"Bearer {key['X-API-Key']}"},
        ).json()
        assert [(m["role"], m.get("unanswered", False)) for m in agents] == [
            ("user", False), ("agent", False), ("user", True)
        ]  # fmt: skip
        detail = httpx.get(f"{base}/v1/characters/{character}", headers=key).json()
        assert detail["stats"]["chat_count"] == 1
        again = httpx.post(
            f"{base}/v1/chat/{character}/messages",
            json={"message": "Are you there?", "max_tokens": 4, "conversation_id": conversation},
            headers=key,
            timeout=60,
        )
        assert again.status_code == 200, again.text
        conv = httpx.get(f"{base}/v1/chat/conversations", headers=key).json()["data"][0]
        assert conv["message_count"] == 5
        me = httpx.get(f"{base}/v1/user/me", headers=key).json()
        assert me["subscription"]["chat_requests"]["used"] == 2
