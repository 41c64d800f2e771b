"""Every error leaves in the dialect's shape: routing errors, validation, body caps, 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from conftest import MakeAccount, make_client
from helpers import agents_error, bearer, characters_error, x_api_key
from personae.api.deps import CurrentAccount, authenticate


class Echo(BaseModel):
    """A body with the usual kinds of field, to drive the validation paths."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=10)
    age: int = Field(ge=18)
    tags: list[str] = []


def probe_router(prefix: str) -> APIRouter:
    """Routes that exist only in these tests, behind the real authentication, so that the
    shared error machinery is exercised before the endpoints that use it exist."""
    router = APIRouter(prefix=prefix, dependencies=[Depends(authenticate)])

    @router.post("/_probe")
    async def probe(body: Echo, account: CurrentAccount) -> Echo:
        return body

    @router.get("/_probe")
    async def probe_query(n: Annotated[int, Query(ge=1, le=5)] = 1) -> dict[str, int]:
        return {"n": n}

    @router.get("/_boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return router


@pytest.fixture
async def probed(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app.include_router(probe_router("/api/v1"))
    app.include_router(probe_router("/v1"))
    async with make_client(app) as c:
        yield c


async def test_unknown_route_is_404_in_each_dialect(client: httpx.AsyncClient) -> None:
    agents_error(await client.get("/api/v1/nothing-here"), 404)
    characters_error(await client.get("/v1/nothing-here"), 404, "not_found")


async def test_wrong_method_is_405_in_each_dialect(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agents_error(await client.delete("/api/v1/models", headers=bearer(creds)), 405)
    characters_error(
        await client.post("/v1/user/me", headers=x_api_key(creds)), 405, "method_not_allowed"
    )


async def test_missing_required_query_names_the_field(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    message = agents_error(await client.get("/api/v1/models", headers=bearer(creds)), 400)
    assert message.startswith("type:")


async def test_invalid_query_value_names_the_field(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    message = agents_error(await client.get("/api/v1/models?type=gpt", headers=bearer(creds)), 400)
    assert "type" in message
    assert "'llm' or 'sd'" in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "a", "age": 20', None),  # malformed JSON
        ('{"name": "a", "age": "old"}', "age"),  # wrong type
        ('{"name": "a", "age": 12}', "age"),  # out of range
        ('{"name": "abcdefghijklmnop", "age": 20}', "name"),  # too long
        ('{"age": 20}', "name"),  # missing
        ('{"name": "a", "age": 20, "colour": "red"}', "colour"),  # unknown key
        ('{"name": "a", "age": 20, "tags": [1]}', "tags[0]"),  # wrong item type
        ("[1, 2]", None),  # not an object
    ],
)
async def test_bad_json_bodies_are_400_naming_the_field(
    probed: httpx.AsyncClient, make_account: MakeAccount, body: str, field: str | None
) -> None:
    creds = await make_account()
    headers = {"Content-Type": "application/json"} | x_api_key(creds)
    message = agents_error(await probed.post("/api/v1/_probe", content=body, headers=headers), 400)
    error = characters_error(
        await probed.post("/v1/_probe", content=body, headers=headers), 400, "invalid_request"
    )
    if field:
        assert message.startswith(f"{field}:"), message
        assert any(f["field"] == field for f in error["details"]["fields"])
    if body.endswith("20"):
        assert message.startswith("Malformed JSON body"), message


async def test_valid_body_passes_the_probe(
    probed: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await probed.post(
        "/v1/_probe", json={"name": "a", "age": 20}, headers=x_api_key(creds)
    )
    assert response.status_code == 200
    assert response.json() == {"name": "a", "age": 20, "tags": []}


async def test_oversized_json_body_is_413_before_anything_runs(
    probed: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    big = '{"name": "' + "x" * 1_100_000 + '", "age": 20}'
    headers = {"Content-Type": "application/json"} | x_api_key(creds)
    agents_error(await probed.post("/api/v1/_probe", content=big, headers=headers), 413)
    error = characters_error(
        await probed.post("/v1/_probe", content=big, headers=headers), 413, "payload_too_large"
    )
    assert error["details"]["limit_bytes"] == 1_000_000


async def test_oversized_chunked_body_is_413(
    probed: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 100_000

    headers = {"Content-Type": "application/json"} | x_api_key(creds)
    response = await probed.post("/v1/_probe", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    characters_error(response, 413, "payload_too_large")


async def test_unexpected_error_is_500_without_internals(
    probed: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    message = agents_error(await probed.get("/api/v1/_boom", headers=bearer(creds)), 500)
    assert message == "Internal error"
    response = await probed.get("/v1/_boom", headers=x_api_key(creds))
    error = characters_error(response, 500, "server_error")
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert error["message"] == "Internal error"
    assert "X-RateLimit-Limit" in response.headers


async def test_bad_input_counts_against_the_rate_limit(
    probed: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await probed.post("/v1/_probe", content="{", headers=x_api_key(creds))
    assert response.status_code == 400
    assert response.headers["X-RateLimit-Remaining"] == "149"
