"""What an operator sees: `GET /metrics` (route templates, turns, refusals, nobody's data),
`X-Request-Id` on every response and in every log line, JSON logs, and the metrics of
`personae serve --workers 2` added up whichever process answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from conftest import MakeAccount, make_client
from helpers import bearer, x_api_key
from llm_servers import free_port, wait_until_serving
from personae.account.service import AccountService
from personae.app import create_app
from personae.config import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, samples(response.text)


async def test_requests_are_counted_by_route_template_never_by_path(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    _, before = await scrape(client)
    body = {"name": "Vexa", "description": "A courier", "personality": "Dry", "background": "Docks"}
    created = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    character_id = created.json()["id"]
    for _ in range(3):
        response = await client.get(f"/v1/characters/{character_id}", headers=x_api_key(creds))
        assert response.status_code == 200
    missing = await client.get("/api/v1/agents/agent_nope", headers=bearer(creds))
    assert missing.status_code == 404
    assert (await client.get(f"/no/such/{character_id}")).status_code == 404
    text, after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "personae_http_requests_total"
    one = {"method": "GET", "route": "/v1/characters/{character_id}", "dialect": "characters"}
    assert delta(total, **one, status="200") == 3
    agent = {"method": "GET", "route": "/api/v1/agents/{agent_id}", "dialect": "agents"}
    assert delta(total, **agent, status="404") == 1
    assert delta(total, method="GET", route="unmatched", dialect="other", status="404") == 1
    create = {"method": "POST", "route": "/v1/characters", "dialect": "characters"}
    assert delta(total, **create, status="201") == 1
    assert delta("personae_http_request_duration_seconds_count", **one) == 3
    assert character_id not in text
    assert creds.plaintext not in text
    assert creds.account.username not in text


async def test_a_turn_and_a_refusal_are_counted_and_no_text_is_kept(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    _, before = await scrape(client)
    secret = "my-unusual-secret-phrase"
    body = {"name": "Vexa", "description": "A courier", "personality": "Dry", "background": "Docks"}
    char = (await client.post("/v1/characters", json=body, headers=x_api_key(creds))).json()["id"]
    turn = await client.post(
        f"/v1/chat/{char}/messages",
        json={"message": secret, "max_tokens": 3, "temperature": 0},
        headers=x_api_key(creds),
    )
    assert turn.status_code == 200, turn.text
    # The free plan's per-minute limit, spent: the next request is refused.
    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        await service.set_plan(await service.get(creds.account.id), "free")
    refused = 0
    for _ in range(12):
        response = await client.get("/v1/user/me", headers=x_api_key(creds))
        refused += response.status_code == 429
    assert refused
    text, after = await scrape(client)
    async with app.state.personae.sessionmaker() as session:
        from personae.model.service import ModelService, ModelType

        model = (await ModelService(session).list_enabled(ModelType.LLM))[0].id

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("personae_chat_turns_total", model=model, outcome="completed") == 1
    assert delta("personae_chat_tokens_total", model=model, direction="completion") >= 1
    assert delta("personae_chat_tokens_total", model=model, direction="prompt") > 10
    assert delta("personae_engine_latency_seconds_count", model=model) == 1
    assert delta("personae_chat_time_to_first_token_seconds_count", model=model) <= 1
    assert delta("personae_refusals_total", reason="rate_limit") == refused
    assert ("personae_db_connections_in_use", frozenset()) in after
    assert secret not in text
    assert creds.plaintext not in text


async def test_image_jobs_are_counted_with_the_queue_depth(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    _, before = await scrape(client)
    body = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "seed": 1}
    response = await client.post("/api/v1/images", json=body, headers=bearer(creds))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"
    await app.state.personae.image_jobs.sweep()
    _, after = await scrape(client)
    completed = {"kind": "image", "outcome": "completed"}
    assert (
        value(after, "personae_jobs_total", **completed)
        - value(before, "personae_jobs_total", **completed)
        == 1
    )
    assert value(after, "personae_queue_depth", kind="image") == 0
    assert ("personae_queue_depth", frozenset({("kind", "image")})) in after


async def test_every_response_carries_a_request_id(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    fresh = await client.get("/v1/user/me", headers=x_api_key(creds))
    again = await client.get("/v1/user/me", headers=x_api_key(creds))
    assert len(fresh.headers["X-Request-Id"]) == 32
    assert fresh.headers["X-Request-Id"] != again.headers["X-Request-Id"]
    given = await client.get(
        "/v1/user/me", headers=x_api_key(creds) | {"X-Request-Id": "lb-7f3a.2:9"}
    )
    assert given.headers["X-Request-Id"] == "lb-7f3a.2:9"
    for unfit in ("has space", "x" * 65, "new\u00e9"):
        response = await client.get(
            "/v1/user/me",
            headers=[("X-API-Key", creds.plaintext), ("X-Request-Id", unfit.encode("utf-8"))],
        )
        assert response.headers["X-Request-Id"] != unfit
        assert len(response.headers["X-Request-Id"]) == 32
    # Refusals before any route too: no key, a key in the query string, an unknown path.
    for response in (
        await client.get("/v1/user/me"),
        await client.get("/v1/user/me?api_key=prs_abcdefghijkl"),
        await client.get("/nowhere"),
    ):
        assert response.status_code in (400, 401, 404)
        assert len(response.headers["X-Request-Id"]) == 32


async def test_metrics_can_be_turned_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": False}))
    async with LifespanManager(app), make_client(app) as client:
        assert (await client.get("/metrics")).status_code == 404


def worker_env(data_dir: Path) -> dict[str, str]:
    """A server on SQLite in `data_dir` with JSON logs and without the embedded model."""
    env = os.environ | {
        "PERSONAE_DATA_DIR": str(data_dir),
        "PERSONAE_PORT": str(free_port()),
        "PERSONAE_LOG_FORMAT": "json",
        "PERSONAE_EMBEDDED_LLM": "false",
    }
    for name in ("PERSONAE_DATABASE_URL", "PERSONAE_REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


@contextmanager
def serving_workers(env: dict[str, str], workers: int) -> Iterator[tuple[str, Path]]:
    """`personae serve --workers N` in `env`; yields its URL and its log file."""
    log_path = Path(env["PERSONAE_DATA_DIR"]) / "server.log"
    with log_path.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "personae", "serve", "--workers", str(workers)],
            env=env,
            stdout=output,
            stderr=output,
        )
        base = f"http://127.0.0.1:{env['PERSONAE_PORT']}"
        try:
            with log_path.open("rb") as reader:
                wait_until_serving(f"{base}/health", proc, reader, timeout=60)
            yield base, log_path
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)


def wait_for_started_workers(log_path: Path, workers: int, timeout: float = 60) -> None:
    """Return once `workers` processes have logged uvicorn's start-up line."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in log_path.read_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        started = {
            line["process"]
            for line in lines
            if line["message"].startswith("Application startup complete")
        }
        if len(started) >= workers:
            return
        assert time.monotonic() < deadline, f"{len(started)} of {workers} workers started"
        time.sleep(0.1)


def test_several_workers_add_up_their_metrics_and_log_json(tmp_path: Path) -> None:
    clients, each = 8, 5
    env = worker_env(tmp_path)
    created = subprocess.run(  # migrates the database before the workers start
        [sys.executable, "-m", "personae", "accounts", "create", "--username", "opsuser7",
         "--plan", "enterprise", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = json.loads(created.stdout)["api_key"]
    with serving_workers(env, workers=2) as (base, log_path):
        wait_for_started_workers(log_path, 2)  # /health answered only says one is

        def one_client() -> list[str]:
            ids = []
            for _ in range(each):
                # A new connection each time, so that the kernel spreads them over the workers.
                with httpx.Client(base_url=base, headers={"X-API-Key": key}) as client:
                    response = client.get("/v1/user/me")
                    assert response.status_code == 200
                    ids.append(response.headers["X-Request-Id"])
            return ids

        with ThreadPoolExecutor(clients) as pool:
            ids = {i for batch in pool.map(lambda _: one_client(), range(clients)) for i in batch}
        me = {"method": "GET", "route": "/v1/user/me", "dialect": "characters"}
        for _ in range(20):  # whichever worker answers a scrape counts every worker's requests
            with httpx.Client(base_url=base) as client:
                scraped = client.get("/metrics").text
            assert value(samples(scraped), "personae_http_requests_total", **me, status="200") == (
                clients * each
            )
        assert key not in scraped
        assert "opsuser7" not in scraped
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, text[:2000]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert ids <= {line["request_id"] for line in access}
    served_by = {line["process"] for line in access if line["request_id"] in ids}
    assert len(served_by) == 2, served_by  # both workers answered; the scrapes added them up
    assert key not in text


@pytest.fixture(autouse=True)
def _no_inherited_multiprocess_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


class Proxy:
    """A TCP proxy to a real service, which can be cut off: the service seen to go away."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.streams: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.streams += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for stream in self.streams:
            stream.close()


async def test_ready_reports_the_services_it_is_configured_with(
    settings: Settings, redis_url: str, amqp_url: str
) -> None:
    """Unconfigured services are `not_configured`, Redis and each broker answering `ok`.
    Redis (rate limits) or the broker going away makes the process unready (503) while
    `/health`, the liveness check, still answers."""
    queue_name = f"personae-test-{uuid.uuid4().hex[:8]}"
    cases = [
        ({}, "not_configured", "not_configured"),
        ({"redis_url": redis_url, "queue_url": redis_url}, "ok", "ok"),
        ({"queue_url": amqp_url}, "not_configured", "ok"),
    ]
    for update, redis, queue in cases:
        app = create_app(settings.model_copy(update=update | {"queue_name": queue_name}))
        async with LifespanManager(app), make_client(app) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 200, (update, ready.text)
            assert (ready.json()["redis"], ready.json()["queue"]) == (redis, queue), update

    # Redis behind a proxy, for the rate limits and the queue alike; then the proxy is cut.
    proxy = Proxy(urlsplit(redis_url).port or 6379)
    through = f"redis://127.0.0.1:{await proxy.start()}/0"
    update = {"redis_url": through, "queue_url": through, "queue_name": queue_name}
    app = create_app(settings.model_copy(update=update))
    async with LifespanManager(app), make_client(app) as client:
        assert (await client.get("/ready")).status_code == 200
        await proxy.cut()
        ready = await client.get("/ready")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert (body["status"], body["redis"], body["queue"]) == (
            "unavailable",
            "unreachable",
            "unreachable",
        )
        assert (await client.get("/health")).status_code == 200
