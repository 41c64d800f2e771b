"""Response headers in both dialects: `nosniff` and `no-store` everywhere (files keep their
own caching), `WWW-Authenticate` on 401, CORS for configured origins only, no redirect that
echoes the request's Host, and `Retry-After` with a `…Z` date on the monthly-quota 429."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from conftest import MakeAccount, create_account, make_client, truncate
from helpers import agents_error, bearer, characters_error, x_api_key
from personae.account.billing import Billing
from personae.account.service import AccountService, next_month_start
from personae.app import create_app
from personae.config import Settings
from personae.state import AppState

CHAR = {"name": "Vexa", "description": "A courier", "personality": "Calm", "background": "Docks"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Webhooks to a loopback address that answers nothing: no delivery needs to succeed.
    return settings.model_copy(update={"webhook_allow_private": True})


def assert_api_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff", response.request.url
    assert response.headers["cache-control"] == "no-store", response.request.url


async def test_api_responses_are_nosniff_and_never_stored(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium")
    responses = [
        await client.get("/health"),
        await client.get("/openapi.json"),
        await client.get("/v1/user/me", headers=x_api_key(creds)),
        await client.get("/api/v1/agents", headers=bearer(creds)),
        await client.post("/v1/characters", json=CHAR, headers=x_api_key(creds)),
        await client.get("/v1/user/me"),  # 401
        await client.get("/api/v1/agents/agent_missing", headers=bearer(creds)),  # 404
        await client.post("/api/v1/agents", json={}, headers=bearer(creds)),  # 400
        await client.get("/v1/nowhere"),  # no route
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 201, 401, 404, 400, 404]
    for response in responses:
        assert_api_headers(response)


async def test_the_answers_that_carry_a_webhook_secret_are_not_stored(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium")
    created = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["character.created"]},
        headers=x_api_key(creds),
    )
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    assert_api_headers(created)
    rotated = await client.post(
        f"/v1/webhooks/{created.json()['id']}/rotate-secret", headers=x_api_key(creds)
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created.json()["secret"]
    assert_api_headers(rotated)


async def test_401_names_the_scheme_in_both_dialects(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-API-Key": "prs_" + "A" * 40}, {"Authorization": "Bearer nope"}):
        agents = await client.get("/api/v1/agents", headers=headers)
        agents_error(agents, 401)
        characters = await client.get("/v1/user/me", headers=headers)
        characters_error(characters, 401, "unauthorized")
        for response in (agents, characters):
            assert response.headers["www-authenticate"] == 'Bearer realm="personae"'


async def test_a_trailing_slash_is_a_404_that_never_echoes_the_host(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    evil = {"Host": "evil.example"}
    agents = await client.get("/api/v1/agents/", headers=bearer(creds) | evil)
    message = agents_error(agents, 404)
    assert "location" not in agents.headers
    assert "did you mean /api/v1/agents?" in message
    characters = await client.post("/v1/characters/", json=CHAR, headers=x_api_key(creds) | evil)
    error = characters_error(characters, 404, "not_found")
    assert "did you mean /v1/characters?" in error["message"]
    for response in (agents, characters):
        assert "evil.example" not in response.text
        assert "location" not in response.headers
    # A path that exists with no variant gets the plain message; nothing was created.
    plain = await client.get("/v1/nowhere/", headers=x_api_key(creds))
    assert "did you mean" not in characters_error(plain, 404, "not_found")["message"]
    mine = await client.get("/api/v1/agents", headers=bearer(creds))
    assert mine.json() == []


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/v1/characters",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers
    plain = await client.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in plain.headers


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    configured = settings.model_copy(
        update={"cors_allowed_origins": "https://app.example, http://localhost:5173"}
    )
    application = create_app(configured)
    async with (
        truncate(configured),
        LifespanManager(application, shutdown_timeout=60),
        make_client(application) as client,
    ):
        yield application, client


async def test_cors_answers_preflights_for_configured_origins(
    cors_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = cors_client
    creds = await create_account(app, "standard")
    for path, header in (("/v1/characters", "x-api-key"), ("/api/v1/agents", "authorization")):
        preflight = await client.options(
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": f"{header}, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {header, "content-type", "idempotency-key"} <= set(allowed.split(", "))
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in preflight.headers
        assert preflight.headers["x-content-type-options"] == "nosniff"
    # The real request: the page may read the answer and the rate-limit headers.
    created = await client.post(
        "/v1/characters",
        json=CHAR,
        headers=x_api_key(creds) | {"Origin": "http://localhost:5173"},
    )
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == "http://localhost:5173"
    exposed = created.headers["access-control-expose-headers"].lower()
    assert "x-ratelimit-remaining" in exposed
    assert "retry-after" in exposed
    # Errors too, so that the page can show them.
    anonymous = await client.get("/v1/user/me", headers={"Origin": "https://app.example"})
    characters_error(anonymous, 401, "unauthorized")
    assert anonymous.headers["access-control-allow-origin"] == "https://app.example"
    # Another origin gets no permission, on a preflight or a request.
    other = await client.options(
        "/v1/characters",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    stranger = await client.get(
        "/v1/user/me", headers=x_api_key(creds) | {"Origin": "https://evil.example"}
    )
    assert stranger.status_code == 200
    assert "access-control-allow-origin" not in stranger.headers


def test_cors_origins_are_checked_when_settings_load() -> None:
    with pytest.raises(ValueError, match="not an origin"):
        Settings(cors_allowed_origins="https://app.example/path", _env_file=None)
    with pytest.raises(ValueError, match="not an origin"):
        Settings(cors_allowed_origins="app.example", _env_file=None)
    ok = Settings(cors_allowed_origins=" * ", _env_file=None)
    assert ok.cors_origins == ["*"]


async def spend_the_monthly_quota(app: FastAPI, account_id: str) -> None:
    """Set the account's quota to 1 and take that one chat request, as a turn would."""
    state: AppState = app.state.personae
    async with state.sessionmaker.begin() as session:
        service = AccountService(session)
        account = await service.set_plan(
            await service.get(account_id), "standard", chat_requests_per_month=1
        )
        await Billing(session).hold(account, 0, chat_request=True)


async def test_the_monthly_quota_429_has_retry_after_and_a_z_date(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    character = (await client.post("/v1/characters", json=CHAR, headers=x_api_key(creds))).json()
    conversation = await client.post(
        "/api/v1/conversations", json={"title": "Quota"}, headers=bearer(creds)
    )
    assert conversation.status_code == 201, conversation.text
    await spend_the_monthly_quota(app, creds.account.id)

    reset = next_month_start(datetime.now(UTC))
    expected = reset.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    characters = await client.post(
        f"/v1/chat/{character['id']}/messages", json={"message": "Hi"}, headers=x_api_key(creds)
    )
    error = characters_error(characters, 429, "rate_limited")
    assert error["details"]["reset_date"] == expected
    assert expected in error["message"]
    assert "+00:00" not in characters.text
    agents = await client.post(
        f"/api/v1/conversations/{conversation.json()['id']}/messages",
        json={"content": "Hi"},
        headers=bearer(creds),
    )
    assert expected in agents_error(agents, 429)
    for response in (characters, agents):
        retry_after = int(response.headers["retry-after"])
        until_reset = (reset - datetime.now(UTC)).total_seconds()
        assert until_reset - 60 <= retry_after <= until_reset + 60
        assert "x-ratelimit-limit" in response.headers
