"""Likes and favorites: idempotent, counted, visible only where the character is."""

from __future__ import annotations

import httpx

from conftest import MakeAccount
from helpers import characters_error, x_api_key
from personae.account.service import Credentials


async def make(client: httpx.AsyncClient, creds: Credentials, name: str, **kw: str) -> str:
    body = {
        "name": name,
        "description": f"{name} desc",
        "personality": "p",
        "background": "b",
        "tags": ["t"],
    } | kw
    response = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_likes_are_idempotent_and_counted(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, fan, other = await make_account(), await make_account(), await make_account()
    char = await make(client, owner, "Vexa")
    url = f"/v1/characters/{char}/like"
    for _ in range(2):
        response = await client.post(url, headers=x_api_key(fan))
        assert response.status_code == 200
        assert response.json() == {"success": True, "character_id": char, "liked": True, "likes": 1}
    assert (await client.post(url, headers=x_api_key(other))).json()["likes"] == 2
    for _ in range(2):
        response = await client.delete(url, headers=x_api_key(fan))
        assert response.json() == {
            "success": True,
            "character_id": char,
            "liked": False,
            "likes": 1,
        }
    detail = (await client.get(f"/v1/characters/{char}", headers=x_api_key(owner))).json()
    assert detail["stats"]["likes"] == 1


async def test_favorites_round_trip(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, fan = await make_account(), await make_account()
    first, second = await make(client, owner, "First"), await make(client, owner, "Second")

    added = await client.post(f"/v1/user/favorites/{first}", headers=x_api_key(fan))
    assert added.status_code == 200
    body = added.json()
    assert body["success"] is True
    assert body["message"] == "Character added to favorites"
    assert body["character_id"] == first
    again = await client.post(f"/v1/user/favorites/{first}", headers=x_api_key(fan))
    assert again.json()["favorited_at"] == body["favorited_at"]  # the first time is kept
    await client.post(f"/v1/user/favorites/{second}", headers=x_api_key(fan))

    listed = (await client.get("/v1/user/favorites", headers=x_api_key(fan))).json()
    assert [f["name"] for f in listed["data"]] == ["Second", "First"]
    assert listed["pagination"] == {"total": 2, "page": 1, "limit": 20, "pages": 1}
    item = listed["data"][1]
    assert set(item) == {
        "id",
        "name",
        "description",
        "tags",
        "image_url",
        "created_at",
        "favorited_at",
    }
    assert item["favorited_at"] == body["favorited_at"]
    detail = (await client.get(f"/v1/characters/{first}", headers=x_api_key(owner))).json()
    assert detail["stats"]["followers"] == 1

    removed = await client.delete(f"/v1/user/favorites/{first}", headers=x_api_key(fan))
    assert removed.json() == {
        "success": True,
        "message": "Character removed from favorites",
        "character_id": first,
    }
    assert (
        await client.delete(f"/v1/user/favorites/{first}", headers=x_api_key(fan))
    ).status_code == 200
    detail = (await client.get(f"/v1/characters/{first}", headers=x_api_key(owner))).json()
    assert detail["stats"]["followers"] == 0
    page = (await client.get("/v1/user/favorites?limit=1", headers=x_api_key(fan))).json()
    assert page["pagination"] == {"total": 1, "page": 1, "limit": 1, "pages": 1}
    characters_error(
        await client.get("/v1/user/favorites?limit=51", headers=x_api_key(fan)),
        400,
        "invalid_request",
    )


async def test_a_favorite_made_private_disappears_from_others_lists(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, fan = await make_account(), await make_account()
    char = await make(client, owner, "Shy")
    await client.post(f"/v1/user/favorites/{char}", headers=x_api_key(fan))
    await client.post(f"/v1/user/favorites/{char}", headers=x_api_key(owner))
    await client.patch(
        f"/v1/characters/{char}", json={"visibility": "private"}, headers=x_api_key(owner)
    )
    assert (await client.get("/v1/user/favorites", headers=x_api_key(fan))).json()["data"] == []
    assert (
        len((await client.get("/v1/user/favorites", headers=x_api_key(owner))).json()["data"]) == 1
    )
    assert (await client.get("/v1/characters?tags=t", headers=x_api_key(fan))).json()["data"] == []


async def test_deleting_a_character_removes_its_likes_and_favorites(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, fan = await make_account(), await make_account()
    char = await make(client, owner, "Gone")
    await client.post(f"/v1/characters/{char}/like", headers=x_api_key(fan))
    await client.post(f"/v1/user/favorites/{char}", headers=x_api_key(fan))
    await client.delete(f"/v1/characters/{char}", headers=x_api_key(owner))
    assert (await client.get("/v1/user/favorites", headers=x_api_key(fan))).json()["pagination"][
        "total"
    ] == 0
    me = (await client.get("/v1/user/me", headers=x_api_key(fan))).json()
    assert me["stats"]["favorites"] == 0
