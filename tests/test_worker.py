"""Jobs on a real broker, run by `personae worker` processes, and jobs that outlive the
process that ran them: a worker stopped or killed mid-job, a server restarted, a job that
ran out of attempts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import update

from conftest import create_account, make_client
from helpers import bearer
from image_servers import ImageServer, image_server
from personae.app import create_app
from personae.config import Settings
from personae.db.base import utcnow
from personae.models import Image
from personae.state import AppState
from test_images import a1111_settings, add_sd_model, balance, fetch_png, poll

LEASE = 1.5  # seconds: a killed worker's job is retried this long after its last renewal


@pytest.fixture
def a1111() -> Iterator[ImageServer]:
    with image_server() as server:
        yield server


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_DATA_DIR=str(settings.data_dir),
        PERSONAE_QUEUE_URL=settings.queue_url,
        PERSONAE_QUEUE_NAME=settings.queue_name,
        PERSONAE_JOB_LEASE_SECONDS=str(settings.job_lease_seconds),
        PERSONAE_PUBLIC_URL=settings.resolved_public_url,
    )
    return env


class Workers:
    """`python -m personae worker` processes, each stopped at the end of the test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.settings.data_dir / f"worker-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "personae", "worker"],
                env=worker_env(self.settings),
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with LifespanManager(app), make_client(app) as client:
        yield app, client


def broker_settings(tmp_path: Path, queue_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        public_url="http://testserver",
        queue_url=queue_url,
        queue_name=f"personae-test-{uuid.uuid4().hex[:8]}",
        job_lease_seconds=LEASE,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_a_worker_runs_the_jobs_of_the_server(tmp_path: Path, broker_url: str) -> None:
    settings = broker_settings(tmp_path, broker_url)
    workers = Workers(settings)
    try:
        async with running(settings) as (app, client):
            assert not app.state.personae.queue.in_process  # this server runs no jobs
            workers.start()
            creds = await create_account(app)
            response = await client.post(
                "/api/v1/images", json={"prompt": "a harbour", "width": 64, "height": 64},
                headers=bearer(creds),
            )  # fmt: skip
            assert response.status_code == 201, response.text
            assert (await fetch_png(client, response.json()["url"])).size == (64, 64)
            agent = await client.post(
                "/api/v1/agents", json={"name": "Wren", "sd_model_id": response.json()["sd_model_id"]},
                headers=bearer(creds),
            )  # fmt: skip
            assert agent.json()["avatar_url"], agent.text
    finally:
        workers.close()


async def wait_status(
    client: httpx.AsyncClient, creds: Any, image_id: str, status: str, attempts: int
) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            response = await client.get(f"/api/v1/images/{image_id}", headers=bearer(creds))
            assert response.status_code == 200, response.text
            image: dict[str, Any] = response.json()
            if image["status"] == status and image["attempts"] == attempts:
                return image
            await asyncio.sleep(0.1)


async def engine_has_seen(server: ImageServer, requests: int) -> None:
    async with asyncio.timeout(10):
        while len(server.requests) < requests:
            await asyncio.sleep(0.02)


async def test_a_job_survives_its_workers(
    tmp_path: Path, redis_url: str, a1111: ImageServer
) -> None:
    settings = broker_settings(tmp_path, redis_url)
    a1111.script.hang_first, a1111.script.hang_seconds = 2, 60
    workers = Workers(settings)
    try:
        async with running(settings) as (app, client):
            model = await add_sd_model(app, "automatic1111", a1111_settings(a1111), cost="0.5")
            creds = await create_account(app, "premium", balance="1")  # room for polling
            body = {"prompt": "a long job", "sd_model_id": model, "async": True}
            accepted = await client.post("/api/v1/images", json=body, headers=bearer(creds))
            assert accepted.status_code == 202, accepted.text
            image_id = accepted.json()["id"]

            first = workers.start()
            await wait_status(client, creds, image_id, "running", 1)
            await engine_has_seen(a1111, 1)
            first.send_signal(signal.SIGTERM)  # a stopping worker hands the job back
            assert first.wait(timeout=20) == 0
            await wait_status(client, creds, image_id, "pending", 0)

            second = workers.start()
            await wait_status(client, creds, image_id, "running", 1)
            await engine_has_seen(a1111, 2)  # killed mid-generation, not before it
            second.kill()  # a dead worker hands nothing back: its lease lapses
            second.wait(timeout=20)

            workers.start()
            done = await wait_status(client, creds, image_id, "completed", 2)
            assert done["url"]
            assert len(a1111.requests) == 3
            assert await balance(app, creds) == Decimal("0.5")  # charged once
    finally:
        workers.close()


async def test_a_restarted_server_finishes_its_jobs(tmp_path: Path, a1111: ImageServer) -> None:
    # memory://: the server is the worker; a stop hands running jobs back, a start sends
    # every unfinished job to the queue again.
    settings = broker_settings(tmp_path, "memory://")
    a1111.script.hang_first, a1111.script.hang_seconds = 1, 60
    async with running(settings) as (app, client):
        model = await add_sd_model(app, "automatic1111", a1111_settings(a1111))
        creds = await create_account(app, "premium")
        body = {"prompt": "interrupted", "sd_model_id": model, "async": True}
        accepted = await client.post("/api/v1/images", json=body, headers=bearer(creds))
        image_id = accepted.json()["id"]
        await wait_status(client, creds, image_id, "running", 1)
        await engine_has_seen(a1111, 1)
    async with running(settings) as (app, client):
        done = await poll(client, creds, image_id, "completed")
        assert done["attempts"] == 1
        assert len(a1111.requests) == 2


async def test_jobs_run_worker_concurrency_at_a_time(tmp_path: Path, a1111: ImageServer) -> None:
    settings = broker_settings(tmp_path, "memory://")
    a1111.script.hang_first, a1111.script.hang_seconds = 3, 0.5
    async with running(settings) as (app, client):
        model = await add_sd_model(app, "automatic1111", a1111_settings(a1111))
        creds = await create_account(app, "premium")
        body = {"prompt": "queued", "sd_model_id": model, "async": True}
        ids = [
            (await client.post("/api/v1/images", json=body, headers=bearer(creds))).json()["id"]
            for _ in range(3)
        ]
        await wait_status(client, creds, ids[0], "running", 1)
        listed = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
        assert sorted(i["status"] for i in listed) == ["pending", "pending", "running"]
        for image_id in ids:
            await wait_status(client, creds, image_id, "completed", 1)


async def test_a_job_out_of_attempts_fails_and_is_refunded(
    tmp_path: Path, a1111: ImageServer
) -> None:
    settings = broker_settings(tmp_path, "memory://")
    settings.job_max_attempts = 2
    async with running(settings) as (app, client):
        state: AppState = app.state.personae
        model = await add_sd_model(app, "automatic1111", a1111_settings(a1111), cost="0.3")
        creds = await create_account(app, balance="1")
        image = (
            await client.post(
                "/api/v1/images", json={"prompt": "cursed", "sd_model_id": model},
                headers=bearer(creds),
            )
        ).json()  # fmt: skip
        assert await balance(app, creds) == Decimal("0.7")
        # As if its last worker died mid-run: running, lease lapsed, no attempts left.
        async with state.sessionmaker.begin() as session:
            await session.execute(
                update(Image)
                .where(Image.id == image["id"])
                .values(status="running", attempts=2, image_key=None,
                        lease_until=utcnow() - timedelta(seconds=1))
            )  # fmt: skip
        assert await state.image_jobs.sweep() == 0
        failed = (await client.get(f"/api/v1/images/{image['id']}", headers=bearer(creds))).json()
        assert failed["status"] == "failed"
        assert "worker stopped during each of 2 attempts" in failed["error"]
        assert await balance(app, creds) == Decimal("1")
        assert await state.image_jobs.sweep() == 0  # refunded once
        assert await balance(app, creds) == Decimal("1")
