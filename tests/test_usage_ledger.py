"""The usage ledger: what each settled chat turn and each finished image wrote to it, that
it agrees with the balance under concurrency, and the month's report read back from it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from conftest import MakeAccount
from helpers import agents_error, bearer, x_api_key
from image_servers import A1111_AUTH, ImageServer, image_server
from llm_servers import free_port
from personae.account.billing import Billing, Consumption
from personae.account.repository import AccountRepository
from personae.account.service import (
    AccountService,
    Credentials,
    DayLine,
    UsageLine,
    ledger_day,
)
from personae.db.base import utcnow
from personae.model.service import ModelService, ModelType
from personae.models import ChatTurn, UsageEntry
from personae.state import AppState

TINY = {"max_tokens": 4, "temperature": 0}
START = 10_000_000  # every account here starts with 10 in micros


def hi(model: str) -> dict[str, Any]:
    """A verbose stateless completion with `model`."""
    return {"messages": [{"role": "user", "content": "Hello"}], "llm_id": model,
            "verbose": True} | TINY  # fmt: skip


@pytest.fixture
def a1111() -> Iterator[ImageServer]:
    with image_server() as server:
        yield server


async def priced_llm(app: FastAPI, cost: str = "1") -> str:
    """A priced copy of the embedded model becomes the only enabled LLM."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        embedded = (await service.list_enabled(ModelType.LLM))[0]
        priced = await service.register(
            ModelType.LLM, "Priced", "llama_cpp", dict(embedded.settings), cost=cost
        )
        await service.set_enabled(embedded.id, False)
    return priced.id


async def ledger(app: FastAPI, creds: Credentials) -> list[UsageEntry]:
    async with app.state.personae.sessionmaker() as session:
        stmt = select(UsageEntry).where(UsageEntry.account_id == creds.account.id)
        return list((await session.scalars(stmt)).all())


async def balance_micros(client: httpx.AsyncClient, creds: Credentials) -> int:
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    return round(me["balance"] * 1_000_000)


def tokens_and_cost(reply: httpx.Response) -> tuple[int, int, int]:
    """A verbose turn's prompt and completion tokens and its charge in micros."""
    assert reply.status_code == 200, reply.text
    thought = reply.json()["thought_process"]
    return (
        thought["tokens"]["prompt"],
        thought["tokens"]["completion"],
        round(thought["cost"] * 1_000_000),
    )


async def test_a_chat_turn_writes_its_tokens_and_charge_to_the_ledger(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    model = await priced_llm(app)
    creds = await make_account(balance="10")
    before = ledger_day(utcnow())
    reply = await client.post("/api/v1/completions", json=hi(model), headers=bearer(creds))
    prompt, completion, cost = tokens_and_cost(reply)
    assert prompt > 0
    assert completion > 0
    assert cost > 0
    [row] = await ledger(app, creds)
    assert row.day in {before, ledger_day(utcnow())}
    assert (row.kind, row.model_id, row.requests) == ("chat", model, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (prompt, completion)
    assert row.cost_micros == cost == START - await balance_micros(client, creds)

    async with app.state.personae.sessionmaker() as session:
        service = AccountService(session)
        report = await service.usage_report(await service.get(creds.account.id))
    assert report.by_model == [UsageLine("chat", model, 1, prompt, completion, cost)]
    assert report.chat_requests == 1
    assert report.chat_quota == 7_500  # the standard plan's
    assert report.balance_micros == START - cost
    assert report.by_day[-1] == DayLine(row.day, 1, prompt + completion, cost)


async def test_a_failed_turn_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        embedded = (await service.list_enabled(ModelType.LLM))[0]
        unreachable = await service.register(
            ModelType.LLM,
            "Unreachable",
            "openai",
            {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m"},
            cost="1",
        )
        await service.set_enabled(embedded.id, False)
    creds = await make_account(balance="10")
    refused = await client.post(
        "/api/v1/completions", json=hi(unreachable.id), headers=bearer(creds)
    )
    agents_error(refused, 503)
    for _ in range(100):  # the hold is given back once the failure is known
        if await balance_micros(client, creds) == START:
            break
        await asyncio.sleep(0.05)
    assert await balance_micros(client, creds) == START
    assert await ledger(app, creds) == []


async def test_a_turn_released_before_it_settles_writes_nothing(
    app: FastAPI, make_account: MakeAccount
) -> None:
    """The turn's instance was taken for dead: its release wins, and its settle afterwards
    neither charges nor records anything."""
    state: AppState = app.state.personae
    creds = await make_account(balance="1")
    async with state.writer.begin() as session:
        model = (await ModelService(session).list_enabled(ModelType.LLM))[0].id
        account = await AccountService(session).get(creds.account.id)
        hold = await Billing(session).hold(account, 500_000, chat_request=True)
        turn_id = await state.turns.start(session, hold, model, None, None)
    assert await state.turns.release(turn_id)
    async with state.writer.begin() as session:
        used = Consumption(model, 12, 3)
        assert not await state.turns.settle(session, turn_id, hold, 100_000, used)
    assert await ledger(app, creds) == []
    async with state.sessionmaker() as session:
        service = AccountService(session)
        summary = await service.summary(await service.get(creds.account.id))
    assert (summary.balance_micros, summary.usage.used) == (1_000_000, 0)


async def test_a_finished_image_is_in_the_ledger_and_a_failed_one_is_not(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, a1111: ImageServer
) -> None:
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        placeholder = await service.register(
            ModelType.SD, "Priced placeholder", "placeholder", {}, cost="0.25"
        )
        failing = await service.register(
            ModelType.SD,
            "Failing",
            "automatic1111",
            {"base_url": a1111.base, "api_auth": ":".join(A1111_AUTH), "width": 64,
             "height": 64, "steps": 4},
            cost="0.5",
        )  # fmt: skip
    a1111.script.fail_first = 100
    creds = await make_account(balance="10")
    body: dict[str, Any] = {"prompt": "a lighthouse", "width": 64, "height": 64}
    made = await client.post(
        "/api/v1/images", json=body | {"sd_model_id": placeholder.id}, headers=bearer(creds)
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "completed"
    failed = await client.post(
        "/api/v1/images", json=body | {"sd_model_id": failing.id}, headers=bearer(creds)
    )
    agents_error(failed, 502)
    [row] = await ledger(app, creds)
    assert (row.kind, row.model_id, row.requests) == ("image", placeholder.id, 1)
    assert (row.prompt_tokens, row.completion_tokens, row.cost_micros) == (0, 0, 250_000)
    assert await balance_micros(client, creds) == START - 250_000


async def test_the_report_has_every_day_of_the_month_so_far(
    app: FastAPI, make_account: MakeAccount
) -> None:
    creds = await make_account(balance="3")
    async with app.state.personae.sessionmaker.begin() as session:
        repo = AccountRepository(session)
        for day, kind, model, numbers in [
            ("2028-01-31", "chat", "llm_a", (9, 900, 90, 9_000)),  # the month before
            ("2028-02-01", "chat", "llm_a", (1, 100, 10, 1_000)),
            ("2028-02-01", "chat", "llm_a", (2, 200, 20, 2_000)),  # adds to the row above
            ("2028-02-01", "image", "sd_a", (1, 0, 0, 250_000)),
            ("2028-02-03", "chat", "llm_b", (1, 50, 5, 3_000)),
            ("2028-02-03", "chat", "llm_c", (1, 40, 4, 3_000)),
            ("2028-02-29", "chat", "llm_a", (4, 4, 4, 4)),  # after "now"
        ]:
            await repo.record_usage(creds.account.id, day, kind, model, *numbers)
        period = "2028-02"
        assert await repo.reserve_chat_request(creds.account.id, period, 10)

    async with app.state.personae.sessionmaker() as session:
        service = AccountService(session)
        account = await service.get(creds.account.id)
        report = await service.usage_report(account, datetime(2028, 2, 5, 23, 59, tzinfo=UTC))
        leap = await service.usage_report(account, datetime(2028, 2, 29, 0, 1, tzinfo=UTC))
    assert (report.period, report.chat_requests, report.chat_quota) == (period, 1, 7_500)
    assert report.reset_date == datetime(2028, 3, 1, tzinfo=UTC)
    assert report.balance_micros == 3_000_000
    assert report.by_model == [
        UsageLine("image", "sd_a", 1, 0, 0, 250_000),
        UsageLine("chat", "llm_a", 3, 300, 30, 3_000),
        UsageLine("chat", "llm_b", 1, 50, 5, 3_000),
        UsageLine("chat", "llm_c", 1, 40, 4, 3_000),
    ]
    assert report.by_day == [
        DayLine("2028-02-01", 4, 330, 253_000),
        DayLine("2028-02-02", 0, 0, 0),
        DayLine("2028-02-03", 2, 99, 6_000),
        DayLine("2028-02-04", 0, 0, 0),
        DayLine("2028-02-05", 0, 0, 0),
    ]
    assert [d.day for d in leap.by_day] == [f"2028-02-{n:02d}" for n in range(1, 30)]
    assert leap.by_day[-1] == DayLine("2028-02-29", 4, 8, 4)
    assert sum(line.requests for line in leap.by_model) == 10


async def test_concurrent_turns_agree_with_the_balance(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """6 turns of one account at once, stateless and in conversations: the ledger counts
    each once, and its cost is the balance's drop and the sum of the charges."""
    model = await priced_llm(app)
    creds = await make_account(balance="10")
    conversations = []
    for _ in range(3):
        made = await client.post("/api/v1/conversations", json={}, headers=bearer(creds))
        assert made.status_code in (200, 201), made.text
        conversations.append(made.json()["id"])

    async def turn(i: int) -> httpx.Response:
        if i < 3:
            return await client.post("/api/v1/completions", json=hi(model), headers=bearer(creds))
        return await client.post(
            f"/api/v1/conversations/{conversations[i - 3]}/messages",
            json={"content": f"Tell me about day {i}.", "verbose": True} | TINY,
            headers=bearer(creds),
        )

    turns = [tokens_and_cost(reply) for reply in await asyncio.gather(*map(turn, range(6)))]
    rows = await ledger(app, creds)
    assert {(row.kind, row.model_id) for row in rows} == {("chat", model)}
    assert sum(row.requests for row in rows) == 6
    assert sum(row.prompt_tokens for row in rows) == sum(t[0] for t in turns)
    assert sum(row.completion_tokens for row in rows) == sum(t[1] for t in turns)
    cost = sum(row.cost_micros for row in rows)
    assert cost == sum(t[2] for t in turns) == START - await balance_micros(client, creds)
    async with app.state.personae.sessionmaker() as session:
        charged = await session.scalars(
            select(ChatTurn.charged_micros).where(ChatTurn.account_id == creds.account.id)
        )
        assert sum(c or 0 for c in charged) == cost
        service = AccountService(session)
        report = await service.usage_report(await service.get(creds.account.id))
    assert report.chat_requests == 6
    assert sum(day.requests for day in report.by_day) == 6
    assert sum(day.cost_micros for day in report.by_day) == cost
