"""Chat turns per second through 1, 2 and 4 API processes on PostgreSQL and Redis.

Each process is a `personae serve` of its own port, as behind a load balancer (one
process per machine, or per container), sharing one PostgreSQL database and one Redis.
Their model is the engine double (bench/engine_double.py, an OpenAI-compatible server
answering `TOKENS` tokens after a fixed `DELAY`), so that the figure measures Personae,
not a model. `CLIENTS` clients chat at once, client i always through process i mod N (a
round-robin load balancer with sticky connections): non-streamed turns, a new
conversation every `TURNS_PER_CONVERSATION` turns. The clients are raw HTTP/1.1 keep-alive
connections in one asyncio loop of a separate process, so that the load generator costs
little of the machine it shares.

Figures:

* `scale.turns_per_s.p1`, `.p2`, `.p4`: turns answered per second over `SECONDS`, after
  `WARMUP` seconds, with 1, 2 and 4 processes;
* `scale.efficiency_p2`: p2 / (2 * p1) (target >= 0.8; on a 2-core machine p4 must not
  fall below p2);
* `scale.errors`: turns answered other than 200, over all runs (target 0);
* `scale.cpu_ms_per_turn.<group>.p1`, `.p2`, `.p4`: CPU milliseconds per turn (from
  /proc) of the API processes (`api`), PostgreSQL's processes, Redis, the engine double,
  this load generator (`load`), and the whole machine's busy time (`machine`, everything
  on it): where the machine saturates.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_turns import add_double, free_port, log, server_env, unlimited_keys, wait_http
from pg_scratch import create_database, drop_database

BENCH_DIR = Path(__file__).resolve().parent
PROCESSES = (1, 2, 4)
CLIENTS = 64
DELAY = 0.2
TOKENS = 8
WARMUP = 4.0
SECONDS = 20.0
TURNS_PER_CONVERSATION = 10
REDIS_URL = os.environ.get("PERSONAE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Connection:
    """One keep-alive HTTP/1.1 connection that sends JSON and reads sized JSON answers."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, object]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Load:
    def __init__(self, ports: list[int], keys: list[str], character: str) -> None:
        self.ports = ports
        self.keys = keys
        self.path = f"/v1/chat/{character}/messages"
        self.counting = False
        self.turns = 0
        self.errors = 0

    async def client(self, i: int, until: float) -> None:
        connection = Connection(self.ports[i % len(self.ports)], self.keys[i % len(self.keys)])
        conversation: str | None = None
        n = 0
        try:
            while time.monotonic() < until:
                body: dict[str, object] = {"message": f"Day {n}?", "max_tokens": TOKENS}
                if conversation and n % TURNS_PER_CONVERSATION:
                    body["conversation_id"] = conversation
                status, answer = await connection.post(self.path, body)
                n += 1
                if status != 200:
                    self.errors += 1
                    log(f"  turn answered {status}: {answer[:200]!r}")
                    continue
                conversation = json.loads(answer)["conversation_id"]
                if self.counting:
                    self.turns += 1
        finally:
            connection.close()

    async def run(self, groups: dict[str, list[int]]) -> tuple[float, dict[str, float]]:
        """Turns per second over `SECONDS`, once `WARMUP` seconds have passed, and the CPU
        milliseconds each group of processes used per turn meanwhile (`machine`: all of
        them, this machine's busy time)."""
        until = time.monotonic() + WARMUP + SECONDS
        clients = [asyncio.create_task(self.client(i, until)) for i in range(CLIENTS)]
        await asyncio.sleep(WARMUP)
        self.counting, started, before = True, time.monotonic(), cpu_by_group(groups)
        await asyncio.sleep(SECONDS)
        turns, elapsed, after = self.turns, time.monotonic() - started, cpu_by_group(groups)
        self.counting = False
        await asyncio.gather(*clients)
        per_turn = {k: (after[k] - before[k]) / max(turns, 1) * 1000 for k in before}
        return turns / elapsed, per_turn


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile (a PostgreSQL backend that ended)
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def pids_named(*names: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in names:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def machine_busy_seconds() -> float:
    """CPU time this machine has spent not idle, all cores (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_by_group(groups: dict[str, list[int]]) -> dict[str, float]:
    found = {name: cpu_seconds(pids) for name, pids in groups.items()}
    found["postgres"] = cpu_seconds(pids_named("postgres"))
    found["redis"] = cpu_seconds(pids_named("redis-server"))
    found["machine"] = machine_busy_seconds()
    return found


def measure(
    env: dict[str, str],
    processes: int,
    keys: list[str],
    character: str,
    double: int,
    log_file: object,
) -> tuple[float, int, dict[str, float]]:
    """Turns/s, errors and CPU ms per turn by group with `processes` API processes."""
    ports = [free_port() for _ in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "personae", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=log_file,  # type: ignore[arg-type]
        )
        for port in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_http(f"http://127.0.0.1:{port}/ready", proc)
        load = Load(ports, keys, character)
        groups = {"api": [p.pid for p in procs], "engine_double": [double], "load": [os.getpid()]}
        rate, cpu_ms = asyncio.run(load.run(groups))
        return rate, load.errors, cpu_ms
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def main() -> dict[str, float]:
    figures: dict[str, float] = {}
    name, database_url = asyncio.run(create_database())
    engine_port = free_port()
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        log(f" logs in {tmp}")
        env = server_env(data_dir, 0, database_url) | {
            "PERSONAE_REDIS_URL": REDIS_URL,
            "ENGINE_DOUBLE_SECONDS": str(DELAY),
            "ENGINE_DOUBLE_TOKENS": str(TOKENS),
        }
        env.pop("PERSONAE_PORT")
        server_log = (Path(tmp) / "servers.log").open("wb")
        double = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(BENCH_DIR),
                "engine_double:app",
                "--port",
                str(engine_port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=server_log,
            stderr=server_log,
        )
        try:
            wait_http(f"http://127.0.0.1:{engine_port}/v1/models", double)
            add_double(env, engine_port)
            keys = unlimited_keys(env, "scale", 16)
            character = create_character(env, keys[0], server_log)
            errors = 0
            for processes in PROCESSES:
                log(f" {processes} process(es), {CLIENTS} clients for {SECONDS:.0f} s")
                rate, failed, cpu_ms = measure(
                    env, processes, keys, character, double.pid, server_log
                )
                shares = ", ".join(f"{k} {v:.2f}" for k, v in cpu_ms.items())
                log(f"  {rate:.1f} turns/s, {failed} errors; CPU ms a turn: {shares}")
                figures[f"scale.turns_per_s.p{processes}"] = round(rate, 2)
                for group, ms in cpu_ms.items():
                    figures[f"scale.cpu_ms_per_turn.{group}.p{processes}"] = round(ms, 2)
                errors += failed
            figures["scale.errors"] = errors
            figures["scale.efficiency_p2"] = round(
                figures["scale.turns_per_s.p2"] / (2 * figures["scale.turns_per_s.p1"]), 3
            )
        finally:
            double.terminate()
            double.wait(timeout=60)
            server_log.close()
            asyncio.run(drop_database(name))
    return figures


def create_character(env: dict[str, str], key: str, log_file: object) -> str:
    """One public character, created through a short-lived server."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "personae", "serve", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=log_file,  # type: ignore[arg-type]
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", proc)
        body = {
            "name": "Brine",
            "description": "a pirate",
            "personality": "gruff",
            "background": "a life at sea",
            "visibility": "public",
        }
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/characters", json=body, headers={"X-API-Key": key}
        )
        response.raise_for_status()
        return str(response.json()["id"])
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
