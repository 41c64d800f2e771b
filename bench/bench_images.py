"""Images: how the server takes requests and stays live while its queue is full.

Runs `python -m personae serve` as a subprocess on the embedded defaults (SQLite, the
in-process memory:// queue, one job at a time), so image jobs share the process with the
HTTP server, as on a laptop. The engine is diffusers with a tiny Stable Diffusion pipeline
built from configs (as the tests do), at 128x128 and 12 steps, so each job takes real CPU.
Requests go over real HTTP from this process.

* `images.job_ms`: one synchronous `POST /api/v1/images` once the pipeline is loaded.
* `images.health_p99_ms_idle`: p99 of `GET /health`, polled every 20 ms for 5 s with
  nothing queued: the baseline of the next figure.
* `images.health_p99_ms_queue_full`: the same while the queue is full: 50 jobs queued
  first, then 4 clients send `"async": true` requests back to back for 20 s (target < 50).
  Also `images.health_p99_vs_idle` (the ratio) and `..._p50_ms_...`.
* `images.accepted_per_min_queue_full`: the async requests answered 202 in that window,
  per minute. Also `images.completed_per_min_queue_full`: jobs finished in the window.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from personae.account.service import AccountService
from personae.app import prepare_database
from personae.config import Settings
from personae.model.service import ModelService, ModelType
from personae.state import AppState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_sd import build_tiny_pipeline

SIDE, STEPS = 128, 12
PREFILL = 50
CLIENTS = 4
WINDOW_S = 20.0
IDLE_S = 5.0
HEALTH_INTERVAL = 0.020


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def setup(data_dir: Path, pipeline: Path) -> tuple[str, str]:
    """Migrate, lift the plan's rate limit, and register the model: (api key, model id)."""
    state = AppState.build(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
    try:
        await prepare_database(state)
        async with state.sessionmaker.begin() as session:
            accounts = AccountService(session)
            await accounts.update_plan("premium", requests_per_minute=10_000_000)
            creds = await accounts.create_account("bench", None, "premium", Decimal(0))
            model = await ModelService(session).register(
                ModelType.SD, "tiny", "diffusers",
                {"path": str(pipeline), "width": SIDE, "height": SIDE, "steps": STEPS},
            )  # fmt: skip
            return creds.plaintext, model.id
    finally:
        await state.close()


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_DATA_DIR=str(data_dir), PERSONAE_PORT=str(port), PERSONAE_LOG_LEVEL="warning"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "personae", "serve"], env=env, stdout=subprocess.DEVNULL
    )


async def wait_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not start")


async def poll_health(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    samples: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/health")
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        await asyncio.sleep(HEALTH_INTERVAL)
    return samples


async def health_for(client: httpx.AsyncClient, seconds: float) -> list[float]:
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health(client, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await poller


async def submit(client: httpx.AsyncClient, body: dict[str, Any], until: float) -> int:
    accepted = 0
    while time.monotonic() < until:
        response = await client.post("/api/v1/images", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"unexpected {response.status_code}: {response.text[:200]}")
        accepted += 1
    return accepted


async def completed(client: httpx.AsyncClient) -> int:
    done = 0
    page = 1
    while True:
        listed = (await client.get(f"/api/v1/images?page={page}&page_size=100")).json()
        done += sum(1 for i in listed["data"] if i["status"] == "completed")
        if listed["pagination"]["next_page"] is None:
            return done
        page += 1


async def bench(tmp: Path) -> dict[str, float]:
    log("building the tiny pipeline")
    pipeline = build_tiny_pipeline(tmp / "pipeline")
    data_dir = tmp / "data"
    key, model_id = await setup(data_dir, pipeline)
    port = free_port()
    server = start_server(data_dir, port)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CLIENTS + 2)
    try:
        async with (
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120, limits=limits
            ) as client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as health,
        ):
            await wait_ready(health)
            body = {"prompt": "a small red house by a lake", "sd_model_id": model_id}
            await client.post("/api/v1/images", json=body)  # loads the pipeline
            started = time.perf_counter()
            response = await client.post("/api/v1/images", json=body)
            job_ms = (time.perf_counter() - started) * 1000
            assert response.status_code == 201, response.text
            log(f"one job: {job_ms:.0f} ms")

            idle = await health_for(health, IDLE_S)
            async_body = {**body, "async": True}
            for _ in range(PREFILL):
                assert (await client.post("/api/v1/images", json=async_body)).status_code == 202
            before = await completed(client)
            log(f"queue filled with {PREFILL}; {CLIENTS} clients submit for {WINDOW_S:.0f} s")
            until = time.monotonic() + WINDOW_S
            stop = asyncio.Event()
            poller = asyncio.create_task(poll_health(health, stop))
            counts = await asyncio.gather(
                *(submit(client, async_body, until) for _ in range(CLIENTS))
            )
            stop.set()
            loaded = await poller
            finished = await completed(client) - before
    finally:
        server.terminate()
        server.wait(timeout=60)
    accepted = sum(counts)
    log(f"accepted {accepted}, completed {finished}, {len(loaded)} health samples")
    p99_idle, p99_full = percentile(idle, 0.99), percentile(loaded, 0.99)
    return {
        "images.job_ms": round(job_ms, 1),
        "images.health_p99_ms_idle": round(p99_idle, 2),
        "images.health_p50_ms_queue_full": round(statistics.median(loaded), 2),
        "images.health_p99_ms_queue_full": round(p99_full, 2),
        "images.health_p99_vs_idle": round(p99_full / p99_idle, 2),
        "images.accepted_per_min_queue_full": round(accepted / WINDOW_S * 60, 1),
        "images.completed_per_min_queue_full": round(finished / WINDOW_S * 60, 1),
    }


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        return asyncio.run(bench(Path(tmp)))


if __name__ == "__main__":
    for figure, value in main().items():
        print(f"{figure} {value}")
