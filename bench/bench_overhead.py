"""What Personae adds to a request: a real `personae serve` against a bare Starlette app.

Both are served by the same uvicorn on this machine. Personae's model is the engine double
(bench/engine_double.py, an OpenAI-compatible server answering 8 tokens over a fixed
`DELAY`); the bare app (bench/bare_starlette.py) has an endpoint that sleeps the same
`DELAY` and one that returns a JSON body shaped like `GET /v1/user/me`. Clients are plain
`http.client` keep-alive connections, one per client thread, so that the client's own cost
is small and the same for both servers. Figures, per database (`sqlite`, `postgres`):

* `overhead.<db>.turn.c1.p50_ms`, `.p99_ms`: a chat turn (`POST /v1/chat/{id}/messages`,
  not streamed, in the client's own conversation, both messages stored) one client at a
  time, minus the same percentile of the bare app's sleeping endpoint in the same run:
  what Personae adds to the model's time (targets: p50 <= 3, p99 <= 8).
* `overhead.<db>.turn.c16.p99_ms`: the same with 16 concurrent clients (target <= 25).
* `overhead.<db>.get.vs_starlette_rps`: requests per second of an authenticated
  `GET /v1/user/me` over those of the bare app's JSON endpoint, one client, sequential,
  alternated rounds, the median round of each (target >= 0.5). Also `.get.rps` and
  `.get.starlette_rps`.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_turns import (
    add_double,
    free_port,
    on_each_backend,
    server_env,
    unlimited_keys,
    wait_http,
)

BENCH_DIR = Path(__file__).resolve().parent
DELAY = 0.05
TOKENS = 8
WARMUP = 30
C1_TURNS = 400
C16_CLIENTS = 16
C16_TURNS = 40  # per client
GET_ROUNDS = 5
GET_REQUESTS = 400  # per round and server


def log(message: str) -> None:
    print(f"#{message}", file=sys.stderr, flush=True)


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = headers or {}

    def request(
        self, method: str, path: str, body: Any = None, expect: int = 200
    ) -> tuple[float, Any]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        self.conn.request(method, path, data, headers)
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return elapsed, json.loads(payload)

    def close(self) -> None:
        self.conn.close()


class Turns:
    """Chat turns in the client's own conversation, and the bare app's sleeping request."""

    def __init__(self, port: int, bare_port: int, key: str, character: str) -> None:
        self.personae = Client(port, {"X-API-Key": key})
        self.bare = Client(bare_port)
        self.path = f"/v1/chat/{character}/messages"
        self.conversation: str | None = None
        self.n = 0

    def turn(self) -> float:
        body: dict[str, Any] = {"message": f"Tell me about day {self.n}.", "max_tokens": TOKENS}
        if self.conversation:
            body["conversation_id"] = self.conversation
        self.n += 1
        elapsed, answer = self.personae.request("POST", self.path, body)
        self.conversation = answer["conversation_id"]
        return elapsed

    def sleep(self) -> float:
        return self.bare.request("POST", "/sleep", {"message": "x"})[0]

    def close(self) -> None:
        self.personae.close()
        self.bare.close()


def run_turns(clients: list[Turns], turns: int) -> tuple[list[float], list[float]]:
    """Each client alternates a Personae turn and a bare request, `turns` of each, all
    clients at once: the two servers see the same load."""
    personae: list[float] = []
    bare: list[float] = []
    lock = threading.Lock()

    def one(client: Turns) -> None:
        mine, theirs = [], []
        for _ in range(turns):
            mine.append(client.turn())
            theirs.append(client.sleep())
        with lock:
            personae.extend(mine)
            bare.extend(theirs)

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return personae, bare


def get_ratio(port: int, bare_port: int, key: str) -> dict[str, float]:
    personae = Client(port, {"X-API-Key": key})
    bare = Client(bare_port)
    rates: dict[str, list[float]] = {"personae": [], "bare": []}
    try:
        for client, path in ((personae, "/v1/user/me"), (bare, "/me")):
            for _ in range(WARMUP):
                client.request("GET", path)
        for _ in range(GET_ROUNDS):
            for name, client, path in (
                ("personae", personae, "/v1/user/me"),
                ("bare", bare, "/me"),
            ):
                started = time.perf_counter()
                for _ in range(GET_REQUESTS):
                    client.request("GET", path)
                rates[name].append(GET_REQUESTS / (time.perf_counter() - started))
    finally:
        personae.close()
        bare.close()
    rps, bare_rps = statistics.median(rates["personae"]), statistics.median(rates["bare"])
    return {
        "get.rps": round(rps, 1),
        "get.starlette_rps": round(bare_rps, 1),
        "get.vs_starlette_rps": round(rps / bare_rps, 3),
    }


def serve(args: list[str], env: dict[str, str], log_file: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env, stdout=log_file, stderr=log_file)


def bench_backend(name: str, database_url: str | None, data_dir: Path) -> dict[str, float]:
    engine_port, bare_port, port = free_port(), free_port(), free_port()
    env = server_env(data_dir, port, database_url) | {
        "ENGINE_DOUBLE_SECONDS": str(DELAY),
        "ENGINE_DOUBLE_TOKENS": str(TOKENS),
    }
    data_dir.mkdir(parents=True)
    server_log = (data_dir / "servers.log").open("wb")
    uvicorn = ["-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--log-level", "warning"]
    procs = [
        serve([*uvicorn, "engine_double:app", "--port", str(engine_port)], env, server_log),
        serve([*uvicorn, "bare_starlette:app", "--port", str(bare_port)], env, server_log),
    ]
    try:
        wait_http(f"http://127.0.0.1:{engine_port}/v1/models", procs[0])
        wait_http(f"http://127.0.0.1:{bare_port}/me", procs[1])
        add_double(env, engine_port)
        keys = unlimited_keys(env, "overhead", C16_CLIENTS)
        procs.append(serve(["-m", "personae", "serve"], env, server_log))
        wait_http(f"http://127.0.0.1:{port}/health", procs[-1])
        _, character = Client(port, {"X-API-Key": keys[0]}).request(
            "POST",
            "/v1/characters",
            {
                "name": "Brine",
                "description": "a pirate",
                "personality": "gruff",
                "background": "a life at sea",
                "visibility": "public",
            },
            expect=201,
        )
        character_id = character["id"]
    except BaseException:
        for proc in procs:
            proc.terminate()
        raise
    figures: dict[str, float] = {}
    try:
        clients = [Turns(port, bare_port, key, character_id) for key in keys]
        log(f" {name}: warm-up")
        run_turns(clients[:1], WARMUP)
        log(f" {name}: {C1_TURNS} turns, one client")
        personae, bare = run_turns(clients[:1], C1_TURNS)
        for q, label in ((50, "p50_ms"), (99, "p99_ms")):
            figures[f"turn.c1.{label}"] = round(percentile(personae, q) - percentile(bare, q), 2)
            figures[f"turn.c1.raw_{label}"] = round(percentile(personae, q), 2)
        log(f" {name}: {C16_CLIENTS} clients x {C16_TURNS} turns")
        personae, bare = run_turns(clients, C16_TURNS)
        figures["turn.c16.p99_ms"] = round(percentile(personae, 99) - percentile(bare, 99), 2)
        figures["turn.c16.raw_p99_ms"] = round(percentile(personae, 99), 2)
        figures["turn.c16.starlette_p99_ms"] = round(percentile(bare, 99), 2)
        for client in clients:
            client.close()
        figures |= get_ratio(port, bare_port, keys[0])
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=60)
        server_log.close()
    log(f" {name}: {figures}")
    return {f"overhead.{name}.{k}": v for k, v in figures.items()}


def main() -> dict[str, float]:
    return on_each_backend(bench_backend)


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
