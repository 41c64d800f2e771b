"""Chat turns under concurrency, crashes and shutdowns: no connection held while a model
generates, one lock order (no deadlock on PostgreSQL), reservations that are always
settled or released once, and counters that agree with the rows afterwards."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select, text

from conftest import MakeAccount, create_account, make_client, truncate
from helpers import agents_error, bearer, characters_error, generating, wait_for, x_api_key
from personae.account.service import AccountService, Credentials
from personae.api.deps import get_chat_service
from personae.app import create_app
from personae.config import Settings
from personae.conversation.fields import TurnOptions
from personae.conversation.prompt import merge_consecutive
from personae.engines.llm.base import ChatMessage
from personae.model.service import ModelService, ModelType
from personae.models import Account, Character, ChatTurn, Conversation, Message, MonthlyUsage
from personae.state import AppState

TINY = {"max_tokens": 4, "temperature": 0}
LONG = {"max_tokens": 1500, "temperature": 0.8}
STORY = "Write a very long story about a courier in a megacity."
PRICE = "1"  # per 1,000 tokens


async def priced_default(app: FastAPI) -> str:
    """A priced copy of the embedded model becomes the only enabled one."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        embedded = (await service.list_enabled(ModelType.LLM))[0]
        priced = await service.register(
            ModelType.LLM, "Priced", "llama_cpp", dict(embedded.settings), cost=PRICE
        )
        await service.set_enabled(embedded.id, False)
    return priced.id


async def new_character(client: httpx.AsyncClient, creds: Credentials, name: str) -> str:
    body = {"name": name, "description": "A courier", "personality": "Dry", "background": "Docks"}
    response = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def streamed(client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: Any) -> int:
    """A streamed turn's status: its HTTP status, or an in-band error event's."""
    async with client.stream("POST", path, json=body | {"stream": True}, headers=headers) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code
        text_ = (await r.aread()).decode()
    for block in text_.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        if lines["event"] == "error":
            error = json.loads(lines["data"])["error"]
            return int(error["status"]) if isinstance(error, dict) else 500
    return 200


async def agreement(state: AppState) -> None:
    """Every counter agrees with the rows: the month's usage with the settled turns, each
    balance with what its turns were charged, each conversation's count with its messages,
    each character's chat count with its conversations and its count toward trending with
    the turns started in them, and no turn left running."""
    await state.chat_activity.flush()
    async with state.sessionmaker() as session:
        turns = (await session.scalars(select(ChatTurn))).all()
        assert all(t.status in ("settled", "released") for t in turns), Counter(
            t.status for t in turns
        )
        settled = Counter(t.account_id for t in turns if t.status == "settled")
        rows = await session.execute(select(MonthlyUsage.account_id, MonthlyUsage.chat_requests))
        usage = {account_id: count for account_id, count in rows}
        assert {a: n for a, n in usage.items() if n} == dict(settled)
        conversations = (await session.scalars(select(Conversation))).all()
        for conversation in conversations:
            messages = (
                await session.scalars(
                    select(Message).where(Message.conversation_id == conversation.id)
                )
            ).all()
            assert conversation.message_count == len(messages)
            assert sorted(m.seq for m in messages) == list(range(1, len(messages) + 1))
            answered = sum(m.role == "agent" for m in messages)
            unanswered = sum(m.unanswered for m in messages)
            assert answered + unanswered == sum(m.role == "user" for m in messages)
            mine = [t for t in turns if t.conversation_id == conversation.id]
            assert answered == sum(t.status == "settled" for t in mine)
            assert unanswered == sum(t.status == "released" for t in mine)
        for character in (await session.scalars(select(Character))).all():
            started = await session.scalar(
                select(func.count()).where(Conversation.character_id == character.id)
            )
            assert character.chat_count == started
            turns_started = sum(
                t.conversation_id is not None
                and t.conversation_id
                in {c.id for c in conversations if c.character_id == character.id}
                for t in turns
            )
            assert character.chats_7d == turns_started, character.id
        charged: Counter[str] = Counter()
        for t in turns:
            charged[t.account_id] += t.charged_micros or 0
        for account_id, amount in charged.items():  # every account with turns started at 10
            account = await session.get_one(Account, account_id)
            assert account.balance_micros == 10_000_000 - amount, account_id


async def test_history_merges_messages_of_one_role_in_a_row() -> None:
    merged = merge_consecutive(
        [
            ChatMessage("user", "Hello?"),
            ChatMessage("user", "Are you there?"),
            ChatMessage("assistant", ""),
            ChatMessage("assistant", "Yes."),
            ChatMessage("user", "Good."),
        ]
    )
    assert merged == [
        ChatMessage("user", "Hello?\n\nAre you there?"),
        ChatMessage("assistant", "Yes."),
        ChatMessage("user", "Good."),
    ]


async def test_no_connection_is_held_while_a_model_generates(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    creds = await make_account()
    char = await new_character(client, creds, "Vexa")
    llm = (await client.get("/api/v1/models?type=llm", headers=bearer(creds))).json()[0]["id"]
    busy = [
        asyncio.create_task(
            client.post(
                f"/v1/chat/{char}/messages",
                json={"message": STORY} | LONG,
                headers=x_api_key(creds),
            )
        ),
        asyncio.create_task(
            client.post(
                "/api/v1/completions",
                json={
                    "messages": [{"role": "user", "content": STORY}],
                    "llm_id": llm,
                    "agent_id": char,
                }
                | LONG,
                headers=bearer(creds),
            )
        ),
    ]
    try:
        await wait_for(generating(app, 2))
        # While both generate, the pool lends nothing (a background beat may borrow one for
        # a moment, so the least over a few samples is what is asserted: each turn that
        # held a connection would keep the count at two or more).
        samples = []
        for _ in range(10):
            samples.append(state.engine.pool.checkedout())  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        assert min(samples) == 0, samples
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)


async def test_concurrent_mixed_turns_keep_every_counter_in_agreement(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """32 turns at once, half streamed, half in new conversations, over 4 accounts and 2
    characters, with catalogue and favorites traffic beside them: no 5xx, no deadlock."""
    state: AppState = app.state.personae
    await priced_default(app)
    accounts = [await create_account(app, balance="10") for _ in range(4)]
    owner = await create_account(app)
    characters = [await new_character(client, owner, name) for name in ("Vexa", "Brine")]
    existing: list[tuple[Credentials, str, str]] = []
    for i, creds in enumerate(accounts):
        char = characters[i % 2]
        first = await client.post(
            f"/v1/chat/{char}/messages", json={"message": "Hi"} | TINY, headers=x_api_key(creds)
        )
        assert first.status_code == 200, first.text
        existing.append((creds, char, first.json()["conversation_id"]))

    async def turn(i: int) -> int:
        creds, char, conversation = existing[i % 4]
        body: dict[str, Any] = {"message": f"Tell me about day {i}."} | TINY
        if i % 4 < 2:
            body["conversation_id"] = conversation  # an existing conversation
        else:
            char = characters[(i // 4) % 2]  # a new one, with either character
        path = f"/v1/chat/{char}/messages"
        if i % 2:
            return await streamed(client, path, body, x_api_key(creds))
        return (await client.post(path, json=body, headers=x_api_key(creds))).status_code

    async def browse(i: int) -> int:
        statuses = []
        for j in range(4):
            char = characters[(i + j) % 2]
            method, path = [
                ("GET", "/v1/characters?sort=popular"),
                ("POST", f"/v1/user/favorites/{char}"),
                ("GET", f"/v1/characters/{char}"),
                ("POST", f"/v1/characters/{char}/like"),
            ][j % 4]
            response = await client.request(method, path, headers=x_api_key(owner))
            statuses.append(response.status_code)
        return max(statuses)

    await lift_rate_limit(app, owner)  # the browsing account makes many requests
    statuses = await asyncio.gather(*(turn(i) for i in range(32)), *(browse(i) for i in range(8)))
    assert Counter(statuses[:32]) == {200: 32}
    assert set(statuses[32:]) == {200}
    await asyncio.sleep(0.2)  # releases run in tasks of their own
    await agreement(state)


async def lift_rate_limit(app: FastAPI, creds: Credentials) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        account = await service.get(creds.account.id)
        await service.set_plan(account, "enterprise", rate_limit_per_minute=100_000)


async def test_a_disabled_model_never_moves_a_conversation_to_a_dearer_one(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    creds = await make_account(balance="10")
    char = await new_character(client, creds, "Vexa")
    first = await client.post(
        f"/v1/chat/{char}/messages", json={"message": "Hi"} | TINY, headers=x_api_key(creds)
    )
    conversation = first.json()["conversation_id"]
    await priced_default(app)  # the free model is disabled; the default now costs more
    refused = await client.post(
        f"/v1/chat/{char}/messages",
        json={"message": "Still there?", "conversation_id": conversation} | TINY,
        headers=x_api_key(creds),
    )
    characters_error(refused, 409, "model_unavailable")
    agents_error(
        await client.post(
            f"/api/v1/conversations/{conversation}/messages",
            json={"content": "Still there?"} | TINY,
            headers=bearer(creds),
        ),
        409,
    )
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["balance"] == 10  # nothing charged, nothing held
    assert me["subscription"]["chat_requests"]["used"] == 1
    # A free default may take over, and the conversation then says so.
    async with state.sessionmaker.begin() as session:
        service = ModelService(session)
        free = await service.register(
            ModelType.LLM, "Free", "llama_cpp", {"path": "builtin:smollm2"}
        )
        for model in await service.list_enabled(ModelType.LLM):
            if model.id != free.id:
                await service.set_enabled(model.id, False)
    moved = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": "Still there?", "verbose": True} | TINY,
        headers=bearer(creds),
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["thought_process"]["engine"]["model_id"] == free.id
    got = (await client.get(f"/api/v1/conversations/{conversation}", headers=bearer(creds))).json()
    assert got["llm_id"] == free.id


@pytest.fixture
def tight_pool(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.3}
    )


async def test_an_exhausted_pool_is_503_with_retry_after(tight_pool: Settings) -> None:
    app = create_app(tight_pool)
    async with truncate(tight_pool), LifespanManager(app), make_client(app) as client:
        creds = await create_account(app)
        state: AppState = app.state.personae
        async with state.engine.connect() as held:  # the only connection
            await held.execute(text("SELECT 1"))
            for path, headers in (
                ("/v1/user/me", x_api_key(creds)),
                ("/api/v1/models", bearer(creds)),
            ):
                response = await client.get(path, headers=headers)
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"] == "2"
            characters_error(
                await client.get("/v1/user/me", headers=x_api_key(creds)),
                503,
                "service_unavailable",
            )
        assert (await client.get("/v1/user/me", headers=x_api_key(creds))).status_code == 200


async def test_a_shutdown_releases_the_turns_it_cut_off(settings: Settings) -> None:
    async with truncate(settings):
        await shutdown_cuts_off_a_turn(settings)


async def shutdown_cuts_off_a_turn(settings: Settings) -> None:
    app = create_app(settings)
    manager = LifespanManager(app, shutdown_timeout=60)
    await manager.__aenter__()
    client = make_client(app)
    creds = await create_account(app, balance="10")
    char = await new_character(client, creds, "Vexa")
    await priced_default(app)
    task = asyncio.create_task(
        client.post(
            f"/v1/chat/{char}/messages", json={"message": STORY} | LONG, headers=x_api_key(creds)
        )
    )
    try:
        await wait_for(generating(app, 1))
        await manager.__aexit__(None, None, None)  # the server stops under the turn
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
    # Read back through a fresh process's view of the database.
    again = create_app(settings)
    async with LifespanManager(again, shutdown_timeout=60):
        await agreement(again.state.personae)
        async with again.state.personae.sessionmaker() as session:
            turn = (await session.scalars(select(ChatTurn))).one()
            assert turn.status == "released"
            account = await session.get_one(Account, creds.account.id)
            assert account.balance_micros == 10_000_000


@pytest.fixture
def quick_beats(settings: Settings) -> Settings:
    return settings.model_copy(update={"turn_heartbeat_seconds": 0.2})


async def test_a_turn_prepared_but_never_run_is_released(quick_beats: Settings) -> None:
    """A turn whose client left before its response began is dropped unrun: the sweep
    gives its hold back, as it does for a dead server's."""
    app = create_app(quick_beats)
    async with truncate(quick_beats), LifespanManager(app), make_client(app) as client:
        state: AppState = app.state.personae
        creds = await create_account(app, balance="10")
        char = await new_character(client, creds, "Vexa")
        await priced_default(app)
        async with state.sessionmaker() as session:
            account = await AccountService(session).get(creds.account.id)
        chat = await get_chat_service(state)
        turn = await chat.prepare_character_turn(
            account, char, None, "Hello?", TurnOptions(max_tokens=64)
        )
        turn_id = turn.turn_id
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        assert me["balance"] < 10  # held
        del turn  # never streamed, never run
        gc.collect()
        deadline = time.monotonic() + 10
        while True:
            async with state.sessionmaker() as session:
                record = await session.get_one(ChatTurn, turn_id)
            if record.status == "released":
                break
            assert time.monotonic() < deadline, record.status
            await asyncio.sleep(0.05)
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        assert me["balance"] == 10
        assert me["subscription"]["chat_requests"]["used"] == 0
        listed = (await client.get("/v1/chat/conversations", headers=x_api_key(creds))).json()
        conversation = listed["data"][0]["id"]
        messages = await client.get(
            f"/v1/chat/conversations/{conversation}/messages", headers=x_api_key(creds)
        )
        assert [m.get("unanswered") for m in messages.json()["data"]] == [True]


async def test_the_sweep_leaves_a_turn_that_is_running(quick_beats: Settings) -> None:
    """With a beat of 0.2 s, a turn of several seconds sees many sweeps: none takes it."""
    app = create_app(quick_beats)
    async with truncate(quick_beats), LifespanManager(app), make_client(app) as client:
        creds = await create_account(app, balance="10")
        char = await new_character(client, creds, "Vexa")
        await priced_default(app)
        started = time.monotonic()
        reply = await client.post(
            f"/v1/chat/{char}/messages",
            json={"message": STORY, "max_tokens": 300, "temperature": 0.8, "verbose": True},
            headers=x_api_key(creds),
        )
        assert reply.status_code == 200, reply.text
        assert time.monotonic() - started > 1  # several sweeps ran meanwhile
        assert reply.json()["thought_process"]["cost"] > 0
        async with app.state.personae.sessionmaker() as session:
            (record,) = (await session.scalars(select(ChatTurn))).all()
            assert record.status == "settled"
