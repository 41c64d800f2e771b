"""The embedded engine as a supervised process: the installed build runs, a killed engine
comes back, a full engine refuses at once, a client that goes away stops its generation,
`/ready` reports each engine, and loaded models stay within the memory budget."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import MakeAccount
from helpers import bearer, json_post_scope, wait_for, x_api_key
from llm_servers import idle_slot
from personae.config import Settings
from personae.engines.llm.base import ChatMessage, Delta, GenerationParams, Sampling
from personae.engines.llm.llama_cpp import LlamaCppConfig, LlamaCppEngine, LlamaRuntime
from personae.engines.llm.registry import MIB
from personae.model.service import ModelService, ModelType
from personae.state import AppState

QUICK = {"max_tokens": 8, "temperature": 0}
LONG = {"max_tokens": 1500, "temperature": 0.8}
STORY = "Write a very long story about a courier in a megacity."
VEXA = {"name": "Vexa", "description": "A courier", "personality": "Defiant", "background": "Slums"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One sequence at a time and one turn in line: the limits are easy to reach."""
    return settings.model_copy(update={"llm_parallel": 1, "llm_max_queued": 1})


def embedded(app: FastAPI) -> LlamaCppEngine:
    state: AppState = app.state.personae
    (engine,) = state.llm_engines.loaded().values()
    assert isinstance(engine, LlamaCppEngine)
    return engine


async def character(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/characters", json=VEXA, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def default_llm(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    models = (await client.get("/api/v1/models?type=llm", headers=headers)).json()
    return str(models[0]["id"])


def test_engine_check_generates_through_the_installed_build() -> None:
    """What `make install` runs last: both halves in child processes, so that a native
    crash would be this test's failure, not the death of the test runner."""
    result = subprocess.run(
        [sys.executable, "-m", "personae", "engine", "check", "--tokens", "4"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tokenizer: ok" in result.stdout
    assert "generated 4 tokens" in result.stdout


async def test_a_killed_engine_process_is_restarted() -> None:
    engine = LlamaCppEngine(LlamaCppConfig(path="builtin:smollm2"), LlamaRuntime(parallel=1))
    await engine.load()
    try:
        assert engine.process is not None
        first = engine.process.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: engine.status().state == "up" and engine.process.pid != first)
        status = engine.status()
        assert status.details["restarts"] == 1
        assert "SIGKILL" in str(status.details["last_exit"])
        chunks = [
            c
            async for c in engine.stream(
                [ChatMessage("user", "Hi")],
                GenerationParams(max_tokens=4, sampling=Sampling(temperature=0)),
            )
        ]
        assert any(isinstance(c, Delta) for c in chunks)
    finally:
        await engine.close()
    assert engine.process is None


async def test_a_full_engine_answers_503_at_once_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    char = await character(client, x_api_key(creds))
    # One turn decoding, one waiting in line: the engine's capacity (parallel 1, queue 1).
    busy = [
        asyncio.create_task(
            client.post(
                f"/v1/chat/{char}/messages",
                json={"message": STORY} | LONG,
                headers=x_api_key(creds),
            )
        )
        for _ in range(2)
    ]
    try:
        await wait_for(lambda: app.state.personae.llm_engines.loaded())
        engine = embedded(app)
        await wait_for(lambda: engine.admission.active == 1 and engine.admission.waiting == 1)
        started = time.monotonic()
        refused = await client.post(
            f"/v1/chat/{char}/messages", json={"message": "Hi"}, headers=x_api_key(creds)
        )
        assert time.monotonic() - started < 5
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "engine_busy"
        assert int(refused.headers["Retry-After"]) >= 1
        agents = await client.post(
            "/api/v1/completions",
            json={
                "messages": [{"role": "user", "content": "Hi"}],
                "llm_id": await default_llm(client, bearer(creds)),
            },
            headers=bearer(creds),
        )
        assert agents.status_code == 503
        assert isinstance(agents.json()["error"], str)
        assert "Retry-After" in agents.headers
        # Refused before anything was written: two conversations, one message each.
        conversations = (
            await client.get("/v1/chat/conversations", headers=x_api_key(creds))
        ).json()["data"]
        assert sorted(c["message_count"] for c in conversations) == [1, 1]
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        assert me["subscription"]["chat_requests"]["used"] == 2
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)


async def test_a_client_that_goes_away_stops_a_non_streamed_generation(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """Drives the app at the ASGI level: the request's body, then (once the engine has
    decoded a few tokens) the disconnect, as a server reports a closed connection."""
    creds = await make_account()
    char = await character(client, x_api_key(creds))
    body = json.dumps({"message": STORY} | LONG).encode()
    sent: list[dict[str, Any]] = []
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await wait_for(lambda: app.state.personae.llm_engines.loaded())
        await wait_for(lambda: embedded(app).admission.active == 1)
        await asyncio.sleep(0.5)  # some tokens decoded
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = f"/v1/chat/{char}/messages"
    scope = json_post_scope(path, creds)
    started = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), timeout=60)
    assert time.monotonic() - started < 20
    # The engine stopped that sequence within a few tokens of the disconnect.
    slot = await idle_slot(embedded(app))
    assert slot["next_token"][0]["n_decoded"] < 150, slot
    conversations = (await client.get("/v1/chat/conversations", headers=x_api_key(creds))).json()
    assert conversations["data"][0]["message_count"] == 1  # the question, no answer stored
    for _ in range(100):
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        if me["subscription"]["chat_requests"]["used"] == 0:
            break
        await asyncio.sleep(0.05)
    assert me["subscription"]["chat_requests"]["used"] == 0  # released, not charged


async def test_ready_reports_each_loaded_engine(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    nothing_loaded = await client.get("/ready")
    assert nothing_loaded.status_code == 200
    assert nothing_loaded.json()["engines"] == []
    creds = await make_account()
    reply = await client.post(
        "/api/v1/completions",
        json={
            "messages": [{"role": "user", "content": "Hi"}],
            "llm_id": await default_llm(client, bearer(creds)),
        }
        | QUICK,
        headers=bearer(creds),
    )
    assert reply.status_code == 200, reply.text
    ready = await client.get("/ready")
    assert ready.status_code == 200
    (engine,) = ready.json()["engines"]
    assert engine["engine"] == "llama_cpp"
    assert engine["state"] == "up"
    assert engine["details"]["parallel"] == 1
    # An engine that is not up makes the process unready, while /health (liveness) holds.
    process = embedded(app).process
    assert process is not None
    await process.stop()
    down = await client.get("/ready")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["engines"][0]["state"] == "stopped"
    assert (await client.get("/health")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_loaded_models_stay_within_the_memory_budget(
    settings: Settings, make_account_factory: Any
) -> None:
    """Two embedded models and room for one: using the second unloads the first."""
    probe = LlamaCppEngine(LlamaCppConfig(path="builtin:smollm2"), LlamaRuntime(parallel=1))
    need = await probe.memory_need()
    probe.tokenizer.close()
    budget = settings.model_copy(update={"llm_memory_budget_mb": need * 3 // 2 // MIB})
    async with make_account_factory(budget) as (app, client, creds):
        state: AppState = app.state.personae
        async with state.sessionmaker.begin() as session:
            service = ModelService(session)
            first = (await service.list_enabled(ModelType.LLM))[0]
            second = await service.register(
                ModelType.LLM, "Second", "llama_cpp", {"path": "builtin:smollm2"}
            )
        body = {"messages": [{"role": "user", "content": "Hi"}]} | QUICK
        for model in (first, second):
            reply = await client.post(
                "/api/v1/completions", json=body | {"llm_id": model.id}, headers=bearer(creds)
            )
            assert reply.status_code == 200, reply.text
        assert list(state.llm_engines.loaded()) == [second.id]
        ready = (await client.get("/ready")).json()
        assert [e["model_id"] for e in ready["engines"]] == [second.id]
        # Back to the first: it is loaded again, and the second gives way.
        reply = await client.post(
            "/api/v1/completions", json=body | {"llm_id": first.id}, headers=bearer(creds)
        )
        assert reply.status_code == 200, reply.text
        assert list(state.llm_engines.loaded()) == [first.id]


@pytest.fixture
def make_account_factory() -> Any:
    """An app with the given settings, a client for it and a standard account."""
    from asgi_lifespan import LifespanManager

    from conftest import create_account, make_client
    from personae.app import create_app

    @contextlib.asynccontextmanager
    async def make(settings: Settings) -> Any:
        application = create_app(settings)
        async with (
            LifespanManager(application, shutdown_timeout=60),
            make_client(application) as client,
        ):
            yield application, client, await create_account(application)

    return make
