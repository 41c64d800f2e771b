"""Chat through both dialects, with each engine: the embedded llama.cpp model, and the same
GGUF behind llama.cpp's OpenAI-compatible server reached over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import MakeAccount
from helpers import (
    agents_error,
    bearer,
    characters_error,
    json_post_scope,
    leave_after_first_chunk,
    x_api_key,
)
from llm_servers import failing_server, free_port, idle_slot, llama_cpp_server
from personae.account.service import AccountService, Credentials
from personae.engines.llm.base import ChatMessage, Delta, GenerationParams, Sampling
from personae.engines.llm.llama_cpp import LlamaCppConfig, LlamaCppEngine, LlamaRuntime
from personae.model.service import ModelService, ModelType

QUICK = {"max_tokens": 8, "temperature": 0}
VEXA = {
    "name": "Vexa Stride",
    "description": "A rogue courier",
    "personality": "Defiant",
    "background": "Raised in the slums",
    "tags": ["cyberpunk"],
}


@pytest.fixture(scope="session")
def openai_server() -> Iterator[str]:
    with llama_cpp_server() as base:
        yield base


@pytest.fixture(params=["embedded", "openai"])
async def llm(request: pytest.FixtureRequest, app: FastAPI) -> str:
    """The id of the model every chat in the test uses (it is made the only enabled LLM)."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        embedded = (await service.list_enabled(ModelType.LLM))[0]
        if request.param == "embedded":
            return embedded.id
        base = request.getfixturevalue("openai_server")
        model = await service.register(
            ModelType.LLM,
            "SmolLM2 over HTTP",
            "openai",
            {
                "base_url": base,
                "model": "smollm2",
                "context_window": 2048,
                "tokenizer_path": "builtin:smollm2",
            },
        )
        await service.set_enabled(embedded.id, False)
        return model.id


async def character(client: httpx.AsyncClient, creds: Credentials, **kw: Any) -> str:
    response = await client.post("/v1/characters", json=VEXA | kw, headers=x_api_key(creds))
    assert response.status_code == 201
    return str(response.json()["id"])


def sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_models_list_shows_the_llm(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account("free")
    models = (await client.get("/api/v1/models?type=llm", headers=bearer(creds))).json()
    assert [m["id"] for m in models] == [llm]
    assert models[0]["max_context"] == 2048
    assert models[0]["cost_per_1k_tokens"] == 0.0


async def test_character_chat_through_both_dialects(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account()
    char = await character(client, creds)
    first = await client.post(
        f"/v1/chat/{char}/messages",
        json={"message": "Who are you?"} | QUICK,
        headers=x_api_key(creds),
    )
    assert first.status_code == 200, first.text
    answer = first.json()
    assert set(answer) == {
        "id",
        "conversation_id",
        "character_id",
        "content",
        "created_at",
        "is_character",
        "image_url",
    }
    assert answer["is_character"] is True
    assert answer["character_id"] == char
    assert answer["content"].strip()
    conv = answer["conversation_id"]
    second = await client.post(
        f"/v1/chat/{char}/messages",
        json={"message": "And then?", "conversation_id": conv} | QUICK,
        headers=x_api_key(creds),
    )
    assert second.json()["conversation_id"] == conv

    listed = (await client.get("/v1/chat/conversations", headers=x_api_key(creds))).json()
    assert listed["pagination"]["total"] == 1
    summary = listed["data"][0]
    assert summary["character"] == {"id": char, "name": "Vexa Stride", "image_url": None}
    assert summary["message_count"] == 4
    assert summary["last_message"]["is_character"] is True
    assert summary["last_message"]["content"] == second.json()["content"]

    newest_first = (
        await client.get(f"/v1/chat/conversations/{conv}/messages", headers=x_api_key(creds))
    ).json()
    assert [m["is_character"] for m in newest_first["data"]] == [True, False, True, False]
    assert newest_first["data"][3]["content"] == "Who are you?"
    assert newest_first["data"][3]["character_id"] is None
    assert newest_first["pagination"] == {"total": 4, "page": 1, "limit": 20, "pages": 1}

    oldest_first = (
        await client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer(creds))
    ).json()
    assert [m["role"] for m in oldest_first] == ["user", "agent", "user", "agent"]
    assert oldest_first[1]["id"] == answer["id"]
    conversation = (await client.get(f"/api/v1/conversations/{conv}", headers=bearer(creds))).json()
    assert conversation["agent_id"] == char
    assert conversation["llm_id"] == llm
    assert conversation["message_count"] == 4

    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["subscription"]["chat_requests"]["used"] == 2
    assert me["stats"]["conversations"] == 1
    detail = (await client.get(f"/v1/characters/{char}", headers=x_api_key(creds))).json()
    assert detail["stats"]["chat_count"] == 1
    # Messages reach trending with the next write of the tally (character/activity.py).
    await app.state.personae.chat_activity.flush()
    trending = (await client.get("/v1/characters?sort=trending", headers=x_api_key(creds))).json()
    assert trending["data"][0]["id"] == char


async def test_agents_conversation_and_completion(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account("free")
    agent = (
        await client.post(
            "/api/v1/agents",
            json={"name": "Advisor", "personality_prompt": "Patient"},
            headers=bearer(creds),
        )
    ).json()
    created = await client.post(
        "/api/v1/conversations",
        json={
            "title": "Money",
            "system_prompt": "Answer briefly.",
            "llm_id": llm,
            "agent_id": agent["id"],
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "agent", "content": "Hi, I am your advisor."},
            ],
        },
        headers=bearer(creds),
    )
    assert created.status_code == 201, created.text
    conv = created.json()
    assert conv["title"] == "Money"
    assert conv["message_count"] == 2
    reply = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"content": "Should I save?"} | QUICK,
        headers=bearer(creds),
    )
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"id", "content", "role", "created_at", "image_url"}
    assert reply.json()["role"] == "agent"
    listed = (await client.get("/api/v1/conversations", headers=bearer(creds))).json()
    assert [c["id"] for c in listed] == [conv["id"]]
    assert listed[0]["message_count"] == 4

    completion = await client.post(
        "/api/v1/completions",
        json={
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Tell me about AI."},
            ],
            "llm_id": llm,
            "agent_id": agent["id"],
        }
        | QUICK,
        headers=bearer(creds),
    )
    assert completion.status_code == 200, completion.text
    assert completion.json()["role"] == "agent"
    assert completion.json()["id"].startswith("msg_")
    # Completions store nothing.
    assert len((await client.get("/api/v1/conversations", headers=bearer(creds))).json()) == 1


async def test_streaming_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account()
    char = await character(client, creds)
    response = await client.post(
        f"/v1/chat/{char}/messages",
        json={"message": "Hi", "stream": True} | QUICK,
        headers=x_api_key(creds),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "X-RateLimit-Remaining" in response.headers
    events = sse(response.text)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "message"
    assert set(kinds[:-1]) == {"delta"}
    final = events[-1][1]
    assert final["content"] == "".join(d["content"] for k, d in events if k == "delta").strip()
    stored = (
        await client.get(
            f"/v1/chat/conversations/{final['conversation_id']}/messages", headers=x_api_key(creds)
        )
    ).json()
    assert stored["data"][0]["id"] == final["id"]
    assert stored["data"][0]["content"] == final["content"]

    conv = final["conversation_id"]
    agents = await client.post(
        f"/api/v1/conversations/{conv}/messages",
        json={"content": "More", "stream": True, "verbose": True} | QUICK,
        headers=bearer(creds),
    )
    events = sse(agents.text)
    assert events[-1][0] == "message"
    assert events[-1][1]["role"] == "agent"
    assert "thought_process" in events[-1][1]
    completion = await client.post(
        "/api/v1/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "llm_id": llm, "stream": True}
        | QUICK,
        headers=bearer(creds),
    )
    assert sse(completion.text)[-1][0] == "message"


async def test_verbose_explains_the_turn(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account()
    char = await character(client, creds)
    body = (
        await client.post(
            f"/v1/chat/{char}/messages",
            json={"message": "Hi", "verbose": True} | QUICK,
            headers=x_api_key(creds),
        )
    ).json()
    thought = body["thought_process"]
    assert thought["tokens"]["completion"] >= 1
    assert thought["tokens"]["prompt"] > 10
    assert thought["history"] == {
        "kept": 0,
        "dropped": 0,
        "note": "the whole history fit the context",
    }
    assert thought["engine"]["model_id"] == llm
    assert thought["engine"]["latency_ms"] > 0
    assert "reasoning" in thought


async def test_history_is_fitted_to_the_context(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account()
    sentence = "The courier crossed the neon city at night carrying a sealed package. " * 3
    history = [("user" if i % 2 == 0 else "agent", f"{i}: {sentence}") for i in range(120)]
    created = await client.post(
        "/api/v1/conversations",
        json={"llm_id": llm, "messages": [{"role": r, "content": c} for r, c in history]},
        headers=bearer(creds),
    )
    conv = created.json()["id"]
    reply = await client.post(
        f"/api/v1/conversations/{conv}/messages",
        json={"content": "Where were we?", "verbose": True} | QUICK,
        headers=bearer(creds),
    )
    assert reply.status_code == 200, reply.text
    kept = reply.json()["thought_process"]["history"]
    assert kept["kept"] + kept["dropped"] == 120
    assert 10 < kept["kept"] < 120
    assert "oldest messages did not fit" in kept["note"]
    assert reply.json()["thought_process"]["tokens"]["prompt"] <= 2048 - 8


async def test_monthly_quota_is_429_before_any_generation(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds = await make_account()
    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        await service.set_plan(
            await service.get(creds.account.id), "standard", chat_requests_per_month=1
        )
    char = await character(client, creds)
    ok = await client.post(
        f"/v1/chat/{char}/messages", json={"message": "One"} | QUICK, headers=x_api_key(creds)
    )
    conv = ok.json()["conversation_id"]
    error = characters_error(
        await client.post(
            f"/v1/chat/{char}/messages",
            json={"message": "Two", "conversation_id": conv} | QUICK,
            headers=x_api_key(creds),
        ),
        429,
        "rate_limited",
    )
    assert error["details"]["limit"] == "monthly_chat_requests"
    assert "Monthly chat request quota" in agents_error(
        await client.post(
            f"/api/v1/conversations/{conv}/messages",
            json={"content": "Three"} | QUICK,
            headers=bearer(creds),
        ),
        429,
    )
    agents_error(
        await client.post(
            "/api/v1/completions",
            json={"messages": [{"role": "user", "content": "x"}], "llm_id": llm},
            headers=bearer(creds),
        ),
        429,
    )
    messages = (
        await client.get(f"/v1/chat/conversations/{conv}/messages", headers=x_api_key(creds))
    ).json()
    assert messages["pagination"]["total"] == 2  # nothing of the refused turns was stored
    assert (await client.get("/v1/user/me", headers=x_api_key(creds))).json()["subscription"][
        "chat_requests"
    ]["used"] == 1


async def test_priced_model_needs_balance_and_charges_it(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        model = await service.get(llm)
        priced = await service.register(
            ModelType.LLM, "Priced", model.engine, dict(model.settings), cost="2.5"
        )
        await service.set_enabled(llm, False)  # the priced model is now the default
    creds = await make_account(balance="0")
    char = await character(client, creds)
    messages = {"messages": [{"role": "user", "content": "Hello"}], "llm_id": priced.id} | QUICK
    refused = await client.post("/api/v1/completions", json=messages, headers=bearer(creds))
    assert agents_error(refused, 402) == "Insufficient account balance"
    chat = await client.post(
        f"/v1/chat/{char}/messages", json={"message": "Hi"} | QUICK, headers=x_api_key(creds)
    )
    characters_error(chat, 402, "payment_required")
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["subscription"]["chat_requests"]["used"] == 0
    assert me["stats"]["conversations"] == 0  # the refused turn started nothing

    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        await service.top_up(await service.get(creds.account.id), Decimal(1))
    reply = await client.post(
        "/api/v1/completions", json=messages | {"verbose": True}, headers=bearer(creds)
    )
    assert reply.status_code == 200, reply.text
    thought = reply.json()["thought_process"]
    tokens = thought["tokens"]["prompt"] + thought["tokens"]["completion"]
    assert thought["cost"] == pytest.approx(tokens * 2.5 / 1000, abs=1e-6)
    balance = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()["balance"]
    assert balance == pytest.approx(1 - thought["cost"], abs=1e-6)


async def test_chat_input_errors(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str
) -> None:
    creds, other = await make_account(), await make_account()
    char = await character(client, creds)
    other_char = await character(client, other)
    private = await character(client, other, visibility="private")
    key = x_api_key(creds)
    assert characters_error(
        await client.post(f"/v1/chat/{char}/messages", json={"message": "  "}, headers=key),
        400,
        "invalid_request",
    )["message"].startswith("message")
    assert characters_error(
        await client.post(f"/v1/chat/{char}/messages", json={"message": "x" * 10_001}, headers=key),
        400,
        "invalid_request",
    )["message"].startswith("message")
    characters_error(
        await client.post(
            f"/v1/chat/{char}/messages", json={"message": "x", "max_tokens": 0}, headers=key
        ),
        400,
        "invalid_request",
    )
    characters_error(
        await client.post(f"/v1/chat/{private}/messages", json={"message": "x"}, headers=key),
        404,
        "not_found",
    )
    characters_error(
        await client.post(
            f"/v1/chat/{char}/messages",
            json={"message": "x", "conversation_id": "conv_nope"},
            headers=key,
        ),
        404,
        "not_found",
    )
    theirs = (
        await client.post(
            f"/v1/chat/{other_char}/messages",
            json={"message": "hi"} | QUICK,
            headers=x_api_key(other),
        )
    ).json()["conversation_id"]
    characters_error(
        await client.post(
            f"/v1/chat/{other_char}/messages",
            json={"message": "x", "conversation_id": theirs},
            headers=key,
        ),
        404,
        "not_found",
    )
    characters_error(
        await client.get(f"/v1/chat/conversations/{theirs}/messages", headers=key), 404, "not_found"
    )
    agents_error(await client.get(f"/api/v1/conversations/{theirs}", headers=bearer(creds)), 404)
    agents_error(
        await client.post(
            f"/api/v1/conversations/{theirs}/messages", json={"content": "x"}, headers=bearer(creds)
        ),
        404,
    )
    mine = (
        await client.post(f"/v1/chat/{char}/messages", json={"message": "hi"} | QUICK, headers=key)
    ).json()["conversation_id"]
    mismatch = await client.post(
        f"/v1/chat/{other_char}/messages",
        json={"message": "x", "conversation_id": mine},
        headers=key,
    )
    assert characters_error(mismatch, 400, "invalid_request")["message"].startswith(
        "conversation_id"
    )
    assert agents_error(
        await client.post(
            "/api/v1/completions", json={"messages": [], "llm_id": llm}, headers=bearer(creds)
        ),
        400,
    ).startswith("messages")
    assert agents_error(
        await client.post(
            "/api/v1/completions",
            json={"messages": [{"role": "user", "content": "x"}], "llm_id": "model_nope"},
            headers=bearer(creds),
        ),
        400,
    ).startswith("llm_id")
    assert agents_error(
        await client.post(
            "/api/v1/conversations", json={"llm_id": "model_nope"}, headers=bearer(creds)
        ),
        400,
    ).startswith("llm_id")
    assert agents_error(
        await client.post(
            "/api/v1/completions",
            json={"messages": [{"role": "robot", "content": "x"}], "llm_id": llm},
            headers=bearer(creds),
        ),
        400,
    ).startswith("messages[0].role")
    too_long = [{"role": "user", "content": "word " * 1900}]
    assert "context" in agents_error(
        await client.post(
            "/api/v1/completions",
            json={"messages": too_long, "llm_id": llm, "max_tokens": 512},
            headers=bearer(creds),
        ),
        400,
    )


@pytest.mark.parametrize(
    ("where", "status", "code"),
    [
        ("/fail/v1", 502, "engine_error"),
        ("/slow/v1", 504, "engine_timeout"),
        ("nowhere", 503, "engine_unavailable"),
    ],
)
async def test_engine_failures_are_gateway_errors_and_keep_the_message(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    where: str,
    status: int,
    code: str,
) -> None:
    with failing_server() as base:
        url = f"http://127.0.0.1:{free_port()}/v1" if where == "nowhere" else base + where
        async with app.state.personae.sessionmaker.begin() as session:
            service = ModelService(session)
            embedded = (await service.list_enabled(ModelType.LLM))[0]
            await service.register(
                ModelType.LLM,
                "Remote",
                "openai",
                {"base_url": url, "model": "m", "timeout_seconds": 1},
            )
            await service.set_enabled(embedded.id, False)
        creds = await make_account()
        char = await character(client, creds)
        error = characters_error(
            await client.post(
                f"/v1/chat/{char}/messages", json={"message": "Hello?"}, headers=x_api_key(creds)
            ),
            status,
            code,
        )
        assert error["message"]
        conversations = (
            await client.get("/v1/chat/conversations", headers=x_api_key(creds))
        ).json()["data"]
        assert len(conversations) == 1
        assert conversations[0]["message_count"] == 1  # the user's message is kept
        assert conversations[0]["last_message"]["content"] == "Hello?"
        conv = conversations[0]["id"]
        agents_error(
            await client.post(
                f"/api/v1/conversations/{conv}/messages",
                json={"content": "Again?"},
                headers=bearer(creds),
            ),
            status,
        )
    # The failed turns do not count against the month's quota (given back after the failure).
    for _ in range(50):
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        if me["subscription"]["chat_requests"]["used"] == 0:
            break
        await asyncio.sleep(0.05)
    assert me["subscription"]["chat_requests"]["used"] == 0


async def test_closing_the_stream_stops_the_embedded_generation() -> None:
    engine = LlamaCppEngine(LlamaCppConfig(path="builtin:smollm2"), LlamaRuntime(parallel=1))
    await engine.load()
    try:
        stream = engine.stream(
            [ChatMessage("user", "Write a very long story about a courier.")],
            GenerationParams(max_tokens=1500, sampling=Sampling(temperature=0.8)),
        )
        received = 0
        async for chunk in stream:
            received += isinstance(chunk, Delta)
            if received == 3:
                break
        await stream.aclose()
        # The engine process drops the sequence: its one slot is idle long before 1,500
        # tokens, and decoded only a few tokens more than were received.
        slot = await idle_slot(engine)
        assert slot["next_token"][0]["n_decoded"] < 50, slot
        assert engine.admission.active == 0
    finally:
        await engine.close()


@pytest.mark.parametrize("spec_version", ["2.0", "2.4"])
async def test_client_disconnect_mid_stream_stores_no_answer(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, spec_version: str
) -> None:
    """Drives the app at the ASGI level: the client goes away after the first event, the
    way servers report it (a disconnect message before ASGI 2.4, a failing send after)."""
    creds = await make_account()
    char = await character(client, creds)
    body = json.dumps(
        {"message": "Tell me a long story", "stream": True, "max_tokens": 1500}
    ).encode()
    scope = json_post_scope(f"/v1/chat/{char}/messages", creds, spec_version)
    assert await leave_after_first_chunk(app, scope, body)
    conversations = (await client.get("/v1/chat/conversations", headers=x_api_key(creds))).json()[
        "data"
    ]
    assert conversations[0]["message_count"] == 1  # the question, and no answer
    for _ in range(100):
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        if me["subscription"]["chat_requests"]["used"] == 0:
            break
        await asyncio.sleep(0.05)
    assert me["subscription"]["chat_requests"]["used"] == 0
    # The engine is free again: a new turn is answered.
    again = await client.post(
        f"/v1/chat/{char}/messages", json={"message": "Hi"} | QUICK, headers=x_api_key(creds)
    )
    assert again.status_code == 200


async def test_a_conversation_whose_model_is_gone_uses_the_default(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        embedded = (await service.list_enabled(ModelType.LLM))[0]
        other = await service.register(ModelType.LLM, "Other", "llama_cpp", dict(embedded.settings))
    creds = await make_account()
    conv = (
        await client.post("/api/v1/conversations", json={"llm_id": other.id}, headers=bearer(creds))
    ).json()
    async with app.state.personae.sessionmaker.begin() as session:
        await ModelService(session).set_enabled(other.id, False)
    reply = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"content": "Hi", "verbose": True} | QUICK,
        headers=bearer(creds),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["thought_process"]["engine"]["model_id"] == embedded.id
    # Naming the disabled model explicitly is still an error.
    explicit = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"content": "Hi", "llm_id": other.id},
        headers=bearer(creds),
    )
    assert agents_error(explicit, 400).startswith("llm_id")
