"""Agents API: the same characters, seen through /api/v1."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, x_api_key

ADVISOR = {
    "name": "Financial Advisor",
    "appearance_prompt": "Professional, suit and tie",
    "personality_prompt": "Knowledgeable about finance, patient",
    "description": "An agent specialized in financial advice",
    "age": 35,
}


async def test_create_agent_prepends_age_and_is_private(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    response = await client.post("/api/v1/agents", json=ADVISOR, headers=bearer(creds))
    assert response.status_code == 201, response.text
    agent = response.json()
    assert agent["id"].startswith("char_")
    assert agent["appearance_prompt"] == "35 years old, Professional, suit and tie"
    assert agent["personality_prompt"] == ADVISOR["personality_prompt"]
    assert agent["description"] == ADVISOR["description"]
    assert agent["avatar_url"] is None
    assert agent["visibility"] == "private"

    assert (
        await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))
    ).json() == agent
    assert agents_error(
        await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(other)), 404
    )
    characters_error(
        await client.get(f"/v1/characters/{agent['id']}", headers=x_api_key(other)),
        404,
        "not_found",
    )
    catalogue = await client.get("/v1/characters", headers=x_api_key(other))
    assert catalogue.json()["data"] == []


async def test_both_dialects_read_the_same_character(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agent = (await client.post("/api/v1/agents", json=ADVISOR, headers=bearer(creds))).json()
    character = (await client.get(f"/v1/characters/{agent['id']}", headers=x_api_key(creds))).json()
    assert character["name"] == agent["name"]
    assert character["personality"] == agent["personality_prompt"]
    assert character["appearance_prompt"] == agent["appearance_prompt"]
    assert character["visibility"] == "private"

    made_public = await client.patch(
        f"/v1/characters/{agent['id']}",
        json={"visibility": "public", "background": "Ex-banker"},
        headers=x_api_key(creds),
    )
    assert made_public.status_code == 200
    seen = (await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))).json()
    assert seen["visibility"] == "public"

    created = await client.post(
        "/v1/characters",
        json={"name": "Vexa", "description": "d", "personality": "p", "background": "b"},
        headers=x_api_key(creds),
    )
    listed = (await client.get("/api/v1/agents", headers=bearer(creds))).json()
    assert [a["id"] for a in listed] == [created.json()["id"], agent["id"]]


async def test_public_agents_of_others_need_catalogue_access(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, paying, free = (
        await make_account(),
        await make_account("pro"),
        await make_account("free"),
    )
    agent = (
        await client.post(
            "/api/v1/agents", json=ADVISOR | {"visibility": "public"}, headers=bearer(owner)
        )
    ).json()
    assert (
        await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(paying))
    ).status_code == 200
    agents_error(await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(free)), 404)
    # The list is one's own agents only.
    assert (await client.get("/api/v1/agents", headers=bearer(paying))).json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"age": 17}, "age"),
        ({"age": "old"}, "age"),
        ({"name": ""}, "name"),
        ({"sd_model_id": "model_nope"}, "sd_model_id"),
        ({"personality_prompt": "x" * 5001}, "personality_prompt"),
        ({"personality": "renamed field"}, "personality"),
    ],
)
async def test_create_agent_validation(
    client: httpx.AsyncClient, make_account: MakeAccount, body: dict[str, Any], field: str
) -> None:
    creds = await make_account()
    message = agents_error(
        await client.post("/api/v1/agents", json=ADVISOR | body, headers=bearer(creds)), 400
    )
    assert message.startswith(field), message
    assert (await client.get("/api/v1/agents", headers=bearer(creds))).json() == []


async def test_name_is_required(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    message = agents_error(
        await client.post("/api/v1/agents", json={"description": "x"}, headers=bearer(creds)), 400
    )
    assert message == "name: Field required"
    minimal = await client.post(
        "/api/v1/agents", json={"name": "Just a name"}, headers=bearer(creds)
    )
    assert minimal.status_code == 201
    assert minimal.json()["appearance_prompt"] == ""


async def test_update_and_delete_agents(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    agent = (await client.post("/api/v1/agents", json=ADVISOR, headers=bearer(creds))).json()
    url = f"/api/v1/agents/{agent['id']}"
    changed = await client.patch(
        url, json={"age": 40, "personality_prompt": "Blunt"}, headers=bearer(creds)
    )
    assert changed.status_code == 200
    assert changed.json()["appearance_prompt"] == "40 years old, Professional, suit and tie"
    assert changed.json()["personality_prompt"] == "Blunt"
    agents_error(await client.patch(url, json={"age": 10}, headers=bearer(creds)), 400)
    agents_error(await client.patch(url, json={"name": "x"}, headers=bearer(other)), 404)
    agents_error(await client.delete(url, headers=bearer(other)), 404)
    assert (await client.delete(url, headers=bearer(creds))).status_code == 204
    agents_error(await client.get(url, headers=bearer(creds)), 404)


async def test_agents_list_pages(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    for i in range(3):
        await client.post("/api/v1/agents", json={"name": f"A{i}"}, headers=bearer(creds))
    first = (await client.get("/api/v1/agents?page_size=2", headers=bearer(creds))).json()
    second = (await client.get("/api/v1/agents?page_size=2&page=2", headers=bearer(creds))).json()
    assert [a["name"] for a in first + second] == ["A2", "A1", "A0"]
    agents_error(await client.get("/api/v1/agents?page_size=101", headers=bearer(creds)), 400)
    agents_error(await client.get("/api/v1/agents?page=0", headers=bearer(creds)), 400)
