"""Authentication in both dialects: either header, unknown and revoked keys, key storage."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, x_api_key
from personae.account.service import AccountService
from personae.models import ApiKey

AGENTS_URL = "/api/v1/models?type=llm"
CHARACTERS_URL = "/v1/user/me"


async def test_missing_key_is_401_in_each_dialect(client: httpx.AsyncClient) -> None:
    assert "API key" in agents_error(await client.get(AGENTS_URL), 401)
    characters_error(await client.get(CHARACTERS_URL), 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "prs_nope"},
        {"X-API-Key": "prs_" + "A" * 40},
        {"Authorization": "Bearer prs_" + "A" * 40},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": ""},
    ],
)
async def test_unknown_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    agents_error(await client.get(AGENTS_URL, headers=headers), 401)
    characters_error(await client.get(CHARACTERS_URL, headers=headers), 401, "unauthorized")


async def test_a_key_with_a_valid_prefix_but_wrong_secret_is_401(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    forged = creds.plaintext[:12] + "x" * 32
    characters_error(
        await client.get(CHARACTERS_URL, headers={"X-API-Key": forged}), 401, "unauthorized"
    )


async def test_each_dialect_accepts_both_headers(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("standard")
    for headers in (bearer(creds), x_api_key(creds)):
        assert (await client.get(AGENTS_URL, headers=headers)).status_code == 200
        assert (await client.get(CHARACTERS_URL, headers=headers)).status_code == 200


async def test_revoked_key_is_401_and_other_keys_still_work(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("standard")
    async with app.state.personae.sessionmaker.begin() as session:
        service = AccountService(session)
        second = await service.create_key(await service.get(creds.account.id), "second")
        await service.revoke_key(creds.key.prefix)
    agents_error(await client.get(AGENTS_URL, headers=bearer(creds)), 401)
    characters_error(
        await client.get(CHARACTERS_URL, headers=x_api_key(creds)), 401, "unauthorized"
    )
    assert (await client.get(CHARACTERS_URL, headers=x_api_key(second))).status_code == 200


async def test_key_is_stored_only_as_a_hash_and_records_its_last_use(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    assert creds.plaintext.startswith("prs_")
    assert len(creds.plaintext) == 44
    before = time.time()
    assert (await client.get(AGENTS_URL, headers=bearer(creds))).status_code == 200
    async with app.state.personae.sessionmaker() as session:
        key = (await session.scalars(select(ApiKey).where(ApiKey.id == creds.key.id))).one()
    assert creds.plaintext not in (key.secret_hash, key.prefix)
    assert key.prefix == creds.plaintext[:12]
    assert len(key.secret_hash) == 64
    assert key.last_used_at is not None
    assert key.last_used_at.timestamp() >= before - 1


async def test_a_failed_request_still_records_the_key_use(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("free")
    # A free plan has no /v1 access: the request fails with 403, but the key was used.
    characters_error(
        await client.get(CHARACTERS_URL, headers=x_api_key(creds)), 403, "subscription_required"
    )
    async with app.state.personae.sessionmaker() as session:
        key = await session.get(ApiKey, creds.key.id)
    assert key is not None
    assert key.last_used_at is not None
