"""Fixtures: an app per test on SQLite and on the real PostgreSQL, an HTTP client speaking
ASGI to it, and accounts made through the service.

PostgreSQL: `PERSONAE_TEST_POSTGRES_URL` names a server (default the local one); each test
run creates its own database there and drops it at the end, so runs never collide.
Redis: `PERSONAE_TEST_REDIS_URL` (default the local one). Set either to `off` to skip
those tests on a machine without the service; `make test` never does.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from personae.account.service import AccountService, Credentials
from personae.app import create_app
from personae.config import Settings
from personae.db.base import Base
from personae.db.session import create_engine
from personae.state import AppState

PG_SERVER = os.environ.get(
    "PERSONAE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PERSONAE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("PERSONAE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_dsn(database: str) -> str:
    base, _, _ = PG_SERVER.rpartition("/")
    return f"{base}/{database}".replace("postgresql+asyncpg://", "postgresql://")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_pg_dsn(PG_SERVER.rpartition("/")[2]))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards: its async SQLAlchemy URL.
    Skips the test where PostgreSQL tests are disabled."""
    if PG_SERVER == "off":
        pytest.skip("PostgreSQL tests disabled (PERSONAE_TEST_POSTGRES_URL=off)")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://")
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test run, as an async SQLAlchemy URL."""
    with fresh_postgres_database("personae_test") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = None
    if backend == "postgres":
        url = request.getfixturevalue("postgres_database")
    return Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        public_url="http://testserver",
        # Engines start on a test's first turn, not with every app (most tests never chat),
        # with two sequences (KV caches) rather than the machine's default.
        llm_preload=False,
        llm_parallel=2,
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init option
    )


async def _truncate(settings: Settings) -> None:
    """Empty every table, once the app has stopped (its jobs too: a delivery still running
    would hold locks that TRUNCATE waits for)."""
    if not settings.resolved_database_url.startswith("postgresql"):
        return  # SQLite databases live in tmp_path and die with the test
    engine = create_engine(settings)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    finally:
        await engine.dispose()


@asynccontextmanager
async def truncate(settings: Settings) -> AsyncIterator[None]:
    """Empty the PostgreSQL tables after a test that runs apps of its own (not `app`)."""
    try:
        yield
    finally:
        await _truncate(settings)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    try:
        # Shutdown waits for jobs being cancelled to wind down; give it room on a busy CI.
        async with LifespanManager(application, shutdown_timeout=60):
            yield application
    finally:
        await _truncate(settings)


def make_client(application: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as c:
        yield c


MakeAccount = Callable[..., Awaitable[Credentials]]


async def create_account(
    application: FastAPI,
    plan: str = "standard",
    *,
    username: str | None = None,
    email: str | None = None,
    balance: str = "0",
) -> Credentials:
    state: AppState = application.state.personae
    async with state.sessionmaker.begin() as session:
        return await AccountService(session).create_account(
            username or f"u{uuid.uuid4().hex[:12]}", email, plan, Decimal(balance)
        )


@pytest.fixture
def make_account(app: FastAPI) -> MakeAccount:
    async def make(plan: str = "standard", **kwargs: str | None) -> Credentials:
        return await create_account(app, plan, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def redis_url() -> str:
    if REDIS_URL == "off":
        pytest.skip("Redis tests disabled (PERSONAE_TEST_REDIS_URL=off)")
    return REDIS_URL


@pytest.fixture
def amqp_url() -> str:
    if AMQP_URL == "off":
        pytest.skip("RabbitMQ tests disabled (PERSONAE_TEST_AMQP_URL=off)")
    return AMQP_URL


class Live:
    """A real `personae serve` process (tests/live_server.py), shared by the tests that
    speak to a server as its users' programs do: the SDKs and the terminal chat."""

    def __init__(self, base: str, env: dict[str, str]) -> None:
        self.base = base
        self.env = env

    def key(self, plan: str = "premium") -> str:
        """A new account's API key, made with `personae accounts create`."""
        from live_server import new_key

        return new_key(self.env, f"user-{uuid.uuid4().hex[:12]}", plan)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from live_server import serving

    # Webhook receivers in the tests listen on loopback.
    with serving(tmp_path_factory.mktemp("live"), webhook_allow_private="true") as (base, env, _):
        yield Live(base, env)
