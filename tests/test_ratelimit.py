"""Per-account limits by plan: headers on every authenticated response, 429 past the limit,
and one shared limit across server processes through Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from conftest import MakeAccount, create_account, make_client
from helpers import agents_error, bearer, characters_error, rate_limit_headers, x_api_key
from personae.account.service import AccountService
from personae.app import create_app
from personae.config import Settings


async def test_free_account_sixth_request_in_a_minute_is_429(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("free")
    for i in range(5):
        response = await client.get("/api/v1/models?type=llm", headers=bearer(creds))
        assert response.status_code == 200
        assert rate_limit_headers(response)[:2] == (5, 4 - i)
    response = await client.get("/api/v1/models?type=llm", headers=bearer(creds))
    assert agents_error(response, 429).startswith("Rate limit of 5 requests per minute")
    limit, remaining, reset = rate_limit_headers(response)
    assert (limit, remaining) == (5, 0)
    assert 0 < reset - time.time() <= 61
    assert 1 <= int(response.headers["Retry-After"]) <= 60

    error = characters_error(
        await client.get("/v1/user/me", headers=x_api_key(creds)), 429, "rate_limited"
    )
    assert error["details"]["limit"] == "requests_per_minute"


async def test_headers_on_every_authenticated_response(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("pro")
    ok = await client.get("/v1/user/me", headers=x_api_key(creds))
    not_found = await client.get("/v1/user/nothing", headers=x_api_key(creds))
    bad = await client.get("/api/v1/models?type=x", headers=bearer(creds))
    assert ok.status_code == 200
    assert bad.status_code == 400
    assert rate_limit_headers(ok)[:2] == (100, 99)
    assert rate_limit_headers(bad)[:2] == (100, 98)
    # An unknown route is answered by the router before authentication: no headers.
    assert not_found.status_code == 404
    assert "X-RateLimit-Limit" not in not_found.headers


async def test_unauthenticated_responses_carry_no_rate_limit_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/user/me")
    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response.headers


async def test_limits_are_per_account_not_global(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    first, second = await make_account("free"), await make_account("free")
    for _ in range(5):
        await client.get("/api/v1/models?type=llm", headers=bearer(first))
    assert (await client.get("/api/v1/models?type=llm", headers=bearer(first))).status_code == 429
    assert (await client.get("/api/v1/models?type=llm", headers=bearer(second))).status_code == 200


async def test_all_keys_of_an_account_share_its_limit(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("free")
    async with app.state.personae.sessionmaker.begin() as session:
        other = await AccountService(session).create_key(creds.account)
    for _ in range(5):
        await client.get("/api/v1/models?type=llm", headers=bearer(creds))
    assert (await client.get("/api/v1/models?type=llm", headers=bearer(other))).status_code == 429


async def test_plan_changes_and_account_overrides_apply(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("standard")
    response = await client.get("/v1/user/me", headers=x_api_key(creds))
    assert rate_limit_headers(response)[0] == 150
    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        await service.set_plan(await service.get(creds.account.id), "enterprise", 7, 900)
    response = await client.get("/v1/user/me", headers=x_api_key(creds))
    assert rate_limit_headers(response)[0] == 7
    assert response.json()["subscription"]["chat_requests"]["limit"] == 900
    async with app.state.personae.sessionmaker.begin() as session:
        await AccountService(session).update_plan("premium", requests_per_minute=3)
        service = AccountService(session)
        await service.set_plan(await service.get(creds.account.id), "premium")
    response = await client.get("/v1/user/me", headers=x_api_key(creds))
    assert rate_limit_headers(response)[0] == 3


@pytest.fixture
async def two_instances(
    settings: Settings, redis_url: str
) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two app instances on one database and one Redis, like two server processes."""
    shared = settings.model_copy(update={"redis_url": redis_url})
    first, second = create_app(shared), create_app(shared)
    async with LifespanManager(first), LifespanManager(second):
        yield first, second


@pytest.mark.redis
async def test_two_instances_share_one_limit_through_redis(
    two_instances: tuple[FastAPI, FastAPI],
) -> None:
    first, second = two_instances
    creds = await create_account(first, "free")
    async with make_client(first) as a, make_client(second) as b:
        statuses = []
        for i in range(6):
            client = a if i % 2 == 0 else b
            response = await client.get("/api/v1/models?type=llm", headers=bearer(creds))
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429]
        # The second instance sees the count the first one made.
        response = await b.get("/api/v1/models?type=llm", headers=bearer(creds))
        assert response.status_code == 429
        assert rate_limit_headers(response)[:2] == (5, 0)


async def test_in_process_limits_are_not_shared(settings: Settings) -> None:
    """Without Redis each process counts alone: the reason PERSONAE_REDIS_URL exists."""
    first, second = create_app(settings), create_app(settings)
    async with LifespanManager(first), LifespanManager(second):
        creds = await create_account(first, "free")
        async with make_client(first) as a, make_client(second) as b:
            for _ in range(5):
                assert (
                    await a.get("/api/v1/models?type=llm", headers=bearer(creds))
                ).status_code == 200
            assert (
                await b.get("/api/v1/models?type=llm", headers=bearer(creds))
            ).status_code == 200
