"""Characters API: create (JSON), read, update, delete, visibility, validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import MakeAccount
from helpers import characters_error, x_api_key
from personae.account.service import Credentials

NOVA = {
    "name": "Nova Chen",
    "description": "A tech genius who predicts the future.",
    "personality": "Innovative, socially awkward, intensely focused.",
    "background": "Child prodigy who built her first supercomputer at 12.",
    "tags": ["sci-fi", "female", "genius"],
}


async def create(client: httpx.AsyncClient, creds: Credentials, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/characters", json=NOVA | overrides, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_answers_201_with_the_detail(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account(username="current_user")
    body = await create(client, creds)
    assert body["id"].startswith("char_")
    for field in ("name", "description", "personality", "background", "tags"):
        assert body[field] == NOVA[field]
    assert body["image_url"] is None
    assert body["created_at"].endswith("Z")
    assert body["creator"] == {"id": creds.account.id, "username": "current_user"}
    assert body["stats"] == {"likes": 0, "chat_count": 0, "followers": 0}
    assert body["visibility"] == "public"

    fetched = await client.get(f"/v1/characters/{body['id']}", headers=x_api_key(creds))
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_public_characters_are_readable_by_other_paying_accounts(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, reader = await make_account(), await make_account("pro")
    char = await create(client, owner)
    response = await client.get(f"/v1/characters/{char['id']}", headers=x_api_key(reader))
    assert response.status_code == 200
    assert response.json()["creator"]["id"] == owner.account.id


async def test_private_characters_are_404_to_everyone_else(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, other = await make_account(), await make_account()
    char = await create(client, owner, visibility="private")
    url = f"/v1/characters/{char['id']}"
    assert (await client.get(url, headers=x_api_key(owner))).status_code == 200
    for method, path in [
        ("GET", url),
        ("PATCH", url),
        ("DELETE", url),
        ("POST", f"{url}/like"),
        ("DELETE", f"{url}/like"),
        ("POST", f"/v1/user/favorites/{char['id']}"),
        ("DELETE", f"/v1/user/favorites/{char['id']}"),
    ]:
        response = await client.request(
            method,
            path,
            json={"name": "x"} if method == "PATCH" else None,
            headers=x_api_key(other),
        )
        error = characters_error(response, 404, "not_found")
        assert "No character" in error["message"], (method, path)
    unknown = await client.get("/v1/characters/char_doesnotexist", headers=x_api_key(owner))
    characters_error(unknown, 404, "not_found")


async def test_only_the_creator_changes_a_public_character(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, other = await make_account(), await make_account()
    char = await create(client, owner)
    url = f"/v1/characters/{char['id']}"
    characters_error(
        await client.patch(url, json={"name": "Hijacked"}, headers=x_api_key(other)),
        403,
        "forbidden",
    )
    characters_error(await client.delete(url, headers=x_api_key(other)), 403, "forbidden")
    assert (await client.get(url, headers=x_api_key(owner))).json()["name"] == "Nova Chen"


async def test_patch_changes_only_given_fields(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    char = await create(client, creds, age=30, appearance_prompt="short silver hair")
    assert char["appearance_prompt"] == "30 years old, short silver hair"
    url = f"/v1/characters/{char['id']}"
    response = await client.patch(
        url,
        json={"name": "Nova", "tags": [" Sci-Fi ", "ROBOTS", "robots"]},
        headers=x_api_key(creds),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Nova"
    assert body["tags"] == ["sci-fi", "robots"]
    assert body["description"] == NOVA["description"]
    assert body["appearance_prompt"] == "30 years old, short silver hair"
    assert body["updated_at"] >= char["updated_at"]
    cleared = await client.patch(url, json={"age": None}, headers=x_api_key(creds))
    assert cleared.json()["appearance_prompt"] == "short silver hair"
    assert cleared.json()["age"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"visibility": "friends"}, "visibility"),
        ({"age": 17}, "age"),
        ({"tags": ["a,b"]}, "tags"),
        ({"owner_id": "user_x"}, "owner_id"),
        ({"name": ""}, "name"),
    ],
)
async def test_patch_refuses_bad_fields_and_changes_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, body: dict[str, Any], field: str
) -> None:
    creds = await make_account()
    char = await create(client, creds)
    url = f"/v1/characters/{char['id']}"
    error = characters_error(
        await client.patch(url, json=body, headers=x_api_key(creds)), 400, "invalid_request"
    )
    assert error["message"].startswith(field), error
    after = (await client.get(url, headers=x_api_key(creds))).json()
    assert after == char


async def test_delete_removes_the_character(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    char = await create(client, creds)
    url = f"/v1/characters/{char['id']}"
    response = await client.delete(url, headers=x_api_key(creds))
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "message": "Character deleted",
        "character_id": char["id"],
    }
    characters_error(await client.get(url, headers=x_api_key(creds)), 404, "not_found")
    characters_error(await client.delete(url, headers=x_api_key(creds)), 404, "not_found")


MAX = {
    "name": 100,
    "description": 1000,
    "personality": 5000,
    "background": 10000,
    "appearance_prompt": 2000,
}


@pytest.mark.parametrize("field", sorted(MAX))
async def test_every_text_field_has_a_maximum(
    client: httpx.AsyncClient, make_account: MakeAccount, field: str
) -> None:
    creds = await make_account()
    at_max = await client.post(
        "/v1/characters", json=NOVA | {field: "x" * MAX[field]}, headers=x_api_key(creds)
    )
    assert at_max.status_code == 201
    over = await client.post(
        "/v1/characters", json=NOVA | {field: "x" * (MAX[field] + 1)}, headers=x_api_key(creds)
    )
    error = characters_error(over, 400, "invalid_request")
    assert error["message"].startswith(f"{field}:")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": None}, "name"),
        ({"description": 5}, "description"),
        ({"tags": "sci-fi"}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": ["x" * 33]}, "tags"),
        ({"tags": ["  "]}, "tags"),
        ({"age": 12}, "age"),
        ({"visibility": "hidden"}, "visibility"),
        ({"id": "char_mine"}, "id"),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, make_account: MakeAccount, overrides: dict[str, Any], field: str
) -> None:
    creds = await make_account()
    body = {k: v for k, v in (NOVA | overrides).items() if v is not None}
    response = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    error = characters_error(response, 400, "invalid_request")
    assert error["message"].startswith(field), error
    listed = await client.get("/v1/characters", headers=x_api_key(creds))
    assert listed.json()["pagination"]["total"] == 0


@pytest.mark.parametrize("missing", ["name", "description", "personality", "background"])
async def test_create_requires_the_documented_fields(
    client: httpx.AsyncClient, make_account: MakeAccount, missing: str
) -> None:
    creds = await make_account()
    body = {k: v for k, v in NOVA.items() if k != missing}
    error = characters_error(
        await client.post("/v1/characters", json=body, headers=x_api_key(creds)),
        400,
        "invalid_request",
    )
    assert error["message"] == f"{missing}: Field required"


async def test_create_refuses_malformed_json_and_other_media_types(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    headers = x_api_key(creds) | {"Content-Type": "application/json"}
    error = characters_error(
        await client.post("/v1/characters", content=b'{"name": ', headers=headers),
        400,
        "invalid_request",
    )
    assert error["message"].startswith("Malformed JSON body")
    text = x_api_key(creds) | {"Content-Type": "text/plain"}
    characters_error(
        await client.post("/v1/characters", content=b"hello", headers=text),
        415,
        "unsupported_media_type",
    )


async def test_tags_are_normalised(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    char = await create(client, creds, tags=["  Cyber  Punk ", "FEMALE", "female", "Sci-Fi"])
    assert char["tags"] == ["cyber punk", "female", "sci-fi"]


async def test_user_me_counts_real_rows(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    mine = [await create(client, creds) for _ in range(3)]
    theirs = await create(client, other)
    for char in (mine[0], theirs):
        await client.post(f"/v1/user/favorites/{char['id']}", headers=x_api_key(creds))
    stats = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()["stats"]
    assert stats == {"characters_created": 3, "conversations": 0, "favorites": 2}
