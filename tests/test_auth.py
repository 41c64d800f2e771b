"""Authentication in both dialects: either header, unknown and revoked keys, key storage."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, openai_error, x_api_key
from personae.account.service import AccountService
from personae.models import ApiKey

AGENTS_URL = "/api/v1/models?type=llm"
CHARACTERS_URL = "/v1/user/me"
# The only routes that answer without a key: load balancers' probes, the Prometheus
# scrape (no account's data: tests/test_observability.py), and files (whose private ones
# need a signed URL instead: tests/test_private_files.py).
PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/files/{key}")}


async def test_missing_key_is_401_in_each_dialect(client: httpx.AsyncClient) -> None:
    assert "API key" in agents_error(await client.get(AGENTS_URL), 401)
    characters_error(await client.get(CHARACTERS_URL), 401, "unauthorized")


async def test_every_route_but_the_public_ones_demands_a_key(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Function-level authorization, from the route table: a route added later is covered.
    Without a key, each answers 401 in its dialect's shape before it reads its input."""
    checked = set()
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        assert route.path is not None
        assert route.methods is not None
        path = route.path.replace("{key:path}", "{key}")
        if path.startswith("/console"):
            continue  # a session, not a key: tests/test_console_isolation.py
        for method in route.methods:
            if (method, path) in PUBLIC:
                continue
            url = re.sub(r"\{[^}]+\}", "x1", path)
            response = await client.request(method, url)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            if path.startswith("/api/v1/"):
                agents_error(response, 401)
            elif path.startswith("/openai/v1/"):
                openai_error(response, 401, "authentication_error")
            else:
                characters_error(response, 401, "unauthorized")
            checked.add((method, path))
    assert len(checked) > 40  # both dialects' routes were found


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
    # Uses are written in batches, off the request path; this is the batch's flush.
    await app.state.personae.authenticator.flush_uses()
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
    await app.state.personae.authenticator.flush_uses()
    async with app.state.personae.sessionmaker() as session:
        key = await session.get(ApiKey, creds.key.id)
    assert key is not None
    assert key.last_used_at is not None
