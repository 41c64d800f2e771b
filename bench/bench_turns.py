"""Chat turns under load: 64 concurrent chat clients against a real `personae serve`, whose
model is an engine double (bench/engine_double.py: an OpenAI-compatible server answering
8 tokens over a fixed 0.5 s), on SQLite and on PostgreSQL.

Each client chats for a fixed time: every other turn streamed, every other turn in a new
conversation (with one of four characters), the rest in its own conversation. Meanwhile
one more client measures a non-generating request (the catalogue, `GET /v1/user/me`) in
a loop. Figures, per database:

* `turns.<db>.errors`: turns or probes answered 5xx, or with an error event (target 0);
* `turns.<db>.turns_per_s`: turns answered per second;
* `turns.<db>.other_p99_vs_idle`: the probe's p99 under that load over its p99 with the
  server idle, measured just before in the same run (target < 3). Also `.other_p99_ms`
  and `.other_idle_p99_ms`.
* `turns.<db>.counters_agree`: 1 if, afterwards, the month's usage equals the turns
  answered and every conversation's count equals its messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from pg_scratch import create_database, drop_database

CLIENTS = 64
SECONDS = 20.0
IDLE_PROBES = 200
BENCH_DIR = Path(__file__).resolve().parent


def log(message: str) -> None:
    print(f"#{message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "personae", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def server_env(data_dir: Path, port: int, database_url: str | None) -> dict[str, str]:
    """The environment of a `personae serve` (and of the CLI beside it) on `port` with its
    data in `data_dir`, on `database_url` (None: SQLite there), without Redis or the
    embedded model."""
    env = os.environ | {
        "PERSONAE_DATA_DIR": str(data_dir),
        "PERSONAE_PORT": str(port),
        "PERSONAE_EMBEDDED_LLM": "false",
        "PERSONAE_LOG_LEVEL": "warning",
        "PERSONAE_SHUTDOWN_GRACE_SECONDS": "5",
    }
    env.pop("PERSONAE_REDIS_URL", None)
    if database_url:
        env["PERSONAE_DATABASE_URL"] = database_url
    else:
        env.pop("PERSONAE_DATABASE_URL", None)
    return env


def add_double(env: dict[str, str], engine_port: int) -> None:
    """Register the engine double listening on `engine_port` as a model."""
    cli(env, "models", "add", "--name", "Double", "--engine", "openai",
        "--base-url", f"http://127.0.0.1:{engine_port}/v1", "--model", "double")  # fmt: skip


def unlimited_keys(env: dict[str, str], prefix: str, count: int) -> list[str]:
    """API keys of `count` enterprise accounts whose limits no benchmark reaches."""
    keys = []
    for i in range(count):
        created = cli(env, "accounts", "create", "--username", f"{prefix}{i}",
                      "--plan", "enterprise")  # fmt: skip
        keys.append(created["api_key"])
        cli(env, "accounts", "set-plan", f"{prefix}{i}", "enterprise",
            "--rate-limit", "10000000", "--monthly-chat-requests", "10000000")  # fmt: skip
    return keys


Bench = Callable[[str, str | None, Path], dict[str, float]]


def on_each_backend(bench: Bench) -> dict[str, float]:
    """`bench(name, database_url, data_dir)` on SQLite, then on a throw-away PostgreSQL
    database: both runs' figures."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        log(f" logs in {tmp}")
        figures.update(bench("sqlite", None, Path(tmp) / "sqlite"))
        name, url = asyncio.run(create_database())
        try:
            figures.update(bench("postgres", url, Path(tmp) / "postgres"))
        finally:
            asyncio.run(drop_database(name))
    return figures


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98] * 1000


class Load:
    def __init__(self, base: str, keys: list[str], characters: list[str]) -> None:
        self.base = base
        self.keys = keys
        self.characters = characters
        self.turns = 0
        self.errors = 0
        self.statuses: dict[int, int] = {}

    async def turn(
        self, client: httpx.AsyncClient, key: str, body: dict[str, Any], char: str
    ) -> str | None:
        """One turn; the conversation it was in, if it was answered as JSON."""
        path = f"{self.base}/v1/chat/{char}/messages"
        headers = {"X-API-Key": key}
        if body.get("stream"):
            async with client.stream("POST", path, json=body, headers=headers) as response:
                data = (await response.aread()).decode()
                status = response.status_code
                if status == 200 and "event: error" in data:
                    status = 599  # an error event in a started stream
        else:
            response = await client.post(path, json=body, headers=headers)
            status = response.status_code
            data = response.text
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.turns += 1
            if not body.get("stream"):
                return str(json.loads(data)["conversation_id"])
        elif status >= 500:
            self.errors += 1
            log(f"  turn answered {status}: {data[:200]}")
        return None

    async def client(self, i: int, until: float) -> None:
        key = self.keys[i % len(self.keys)]
        char = self.characters[i % len(self.characters)]
        conversation: str | None = None
        n = 0
        async with httpx.AsyncClient(timeout=120) as client:
            while time.monotonic() < until:
                body: dict[str, Any] = {"message": f"Tell me about day {n}.", "max_tokens": 8}
                body["stream"] = n % 2 == 1
                if conversation is not None and n % 4 >= 2:
                    body["conversation_id"] = conversation
                conversation = await self.turn(client, key, body, char) or conversation
                n += 1


async def probe(base: str, key: str, count: int | None, until: float | None) -> list[float]:
    samples: list[float] = []
    paths = ["/v1/characters?sort=popular&limit=20", "/v1/user/me"]
    async with httpx.AsyncClient(timeout=60, headers={"X-API-Key": key}) as client:
        i = 0
        while (count is not None and i < count) or (until is not None and time.monotonic() < until):
            started = time.perf_counter()
            response = await client.get(base + paths[i % 2])
            samples.append(time.perf_counter() - started)
            if response.status_code >= 500:
                raise RuntimeError(f"probe answered {response.status_code}")
            i += 1
            await asyncio.sleep(0.01)
    return samples


async def agree(database_url: str) -> bool:
    """The month's usage equals the turns answered; every count equals its messages."""
    if database_url.startswith("sqlite"):
        import aiosqlite

        async with aiosqlite.connect(database_url.split("///", 1)[1]) as db:

            async def one(sql: str) -> Any:
                async with db.execute(sql) as cursor:
                    return (await cursor.fetchone())[0]

            return await _agree(one)
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await _agree(conn.fetchval)
    finally:
        await conn.close()


async def _agree(one: Any) -> bool:
    usage = await one("SELECT COALESCE(SUM(chat_requests), 0) FROM monthly_usage")
    settled = await one("SELECT COUNT(*) FROM chat_turns WHERE status = 'settled'")
    running = await one("SELECT COUNT(*) FROM chat_turns WHERE status = 'running'")
    off = await one(
        "SELECT COUNT(*) FROM conversations c WHERE c.message_count != "
        "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
    )
    log(f"  usage {usage}, settled turns {settled}, running {running}, miscounted {off}")
    return bool(usage == settled and running == 0 and off == 0)


async def run(
    base: str, keys: list[str], characters: list[str], probe_key: str
) -> dict[str, float]:
    idle = await probe(base, probe_key, IDLE_PROBES, None)
    load = Load(base, keys, characters)
    until = time.monotonic() + SECONDS
    started = time.monotonic()
    results = await asyncio.gather(
        probe(base, probe_key, None, until),
        *(load.client(i, until) for i in range(CLIENTS)),
    )
    elapsed = time.monotonic() - started
    busy = results[0]
    log(f"  statuses {load.statuses}, {len(busy)} probes under load, {len(idle)} idle")
    return {
        "errors": load.errors,
        "turns_per_s": round(load.turns / elapsed, 2),
        "other_p99_vs_idle": round(p99(busy) / p99(idle), 3),
        "other_p99_ms": round(p99(busy), 2),
        "other_idle_p99_ms": round(p99(idle), 2),
    }


def bench_backend(name: str, database_url: str | None, data_dir: Path) -> dict[str, float]:
    engine_port, port = free_port(), free_port()
    double = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "engine_double:app",
         "--port", str(engine_port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = server_env(data_dir, port, database_url)
    server = None
    server_log = (data_dir.parent / f"{name}-server.log").open("wb")
    try:
        wait_http(f"http://127.0.0.1:{engine_port}/v1/models", double)
        add_double(env, engine_port)
        keys = unlimited_keys(env, "load", 8)
        server = subprocess.Popen(
            [sys.executable, "-m", "personae", "serve"], env=env,
            stdout=server_log, stderr=server_log,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", server)
        characters = []
        for i in range(4):
            body = {"name": f"Char {i}", "description": "d", "personality": "p", "background": "b"}
            response = httpx.post(
                f"{base}/v1/characters", json=body, headers={"X-API-Key": keys[0]}
            )
            characters.append(response.json()["id"])
        log(f" {name}: {CLIENTS} clients for {SECONDS:.0f} s")
        figures = asyncio.run(run(base, keys, characters, keys[-1]))
        url = database_url or f"sqlite+aiosqlite:///{data_dir / 'personae.db'}"
        figures["counters_agree"] = float(asyncio.run(agree(url)))
        return {f"turns.{name}.{k}": v for k, v in figures.items()}
    finally:
        for proc in (server, double):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
        server_log.close()


def main() -> dict[str, float]:
    return on_each_backend(bench_backend)


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
