"""`GET /v1/characters`: sorts, tag filters, pagination, validation, trending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import MakeAccount
from helpers import characters_error, x_api_key
from personae.account.service import Credentials
from personae.character.service import CharacterService


async def make(
    client: httpx.AsyncClient, creds: Credentials, name: str, tags: list[str], **kw: Any
) -> str:
    body = {
        "name": name,
        "description": "d",
        "personality": "p",
        "background": "b",
        "tags": tags,
    } | kw
    response = await client.post("/v1/characters", json=body, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def service(app: FastAPI, session: Any) -> CharacterService:
    state = app.state.personae
    return CharacterService(session, state.storage, state.settings.max_upload_bytes)


async def names(client: httpx.AsyncClient, creds: Credentials, query: str = "") -> list[str]:
    response = await client.get(f"/v1/characters{query}", headers=x_api_key(creds))
    assert response.status_code == 200, response.text
    return [c["name"] for c in response.json()["data"]]


async def test_sorts_and_tag_filters(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    fans = [await make_account() for _ in range(3)]
    a = await make(client, creds, "A", ["fantasy", "female"])
    b = await make(client, creds, "B", ["fantasy"])
    c = await make(client, creds, "C", ["sci-fi", "female"])
    await make(client, creds, "Hidden", ["fantasy", "female"], visibility="private")
    # likes: C 3, A 1, B 0
    for fan in fans:
        await client.post(f"/v1/characters/{c}/like", headers=x_api_key(fan))
    await client.post(f"/v1/characters/{a}/like", headers=x_api_key(fans[0]))
    # chat activity: B busy this week, A busy long ago
    async with app.state.personae.sessionmaker.begin() as session:
        s = service(app, session)
        now = datetime.now(UTC)
        for _ in range(5):
            await s.record_chat_activity(b, now)
        for _ in range(9):
            await s.record_chat_activity(a, now - timedelta(days=10))
        await s.record_chat_activity(c, now - timedelta(days=6))
        await s.record_conversation_started(b)
        await s.refresh_trending(now)

    assert await names(client, creds) == ["C", "A", "B"]  # popular is the default
    assert await names(client, creds, "?sort=popular") == ["C", "A", "B"]
    assert await names(client, creds, "?sort=newest") == ["C", "B", "A"]
    assert await names(client, creds, "?sort=trending") == ["B", "C", "A"]
    assert await names(client, creds, "?tags=fantasy") == ["A", "B"]
    assert await names(client, creds, "?tags=female,fantasy") == ["A"]
    assert await names(client, creds, "?tags=FEMALE,%20fantasy%20") == ["A"]
    assert await names(client, creds, "?tags=female&sort=newest") == ["C", "A"]
    assert await names(client, creds, "?tags=nothing") == []
    page = (await client.get("/v1/characters?tags=female", headers=x_api_key(creds))).json()
    assert page["pagination"] == {
        "total": 2,
        "page": 1,
        "limit": 20,
        "pages": 1,
        "next_cursor": None,
    }
    first = page["data"][0]
    assert set(first) == {
        "id",
        "name",
        "description",
        "tags",
        "image_url",
        "created_at",
        "likes",
        "chat_count",
    }
    assert first["likes"] == 3
    detail = (await client.get(f"/v1/characters/{b}", headers=x_api_key(creds))).json()
    assert detail["stats"]["chat_count"] == 1


async def test_pagination(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    for i in range(5):
        await make(client, creds, f"N{i}", ["x"])
    one = (await client.get("/v1/characters?sort=newest&limit=2", headers=x_api_key(creds))).json()
    assert one["pagination"] | {"next_cursor": None} == {
        "total": 5,
        "page": 1,
        "limit": 2,
        "pages": 3,
        "next_cursor": None,
    }
    assert isinstance(one["pagination"]["next_cursor"], str)
    seen = [c["name"] for c in one["data"]]
    for page in (2, 3):
        body = (
            await client.get(
                f"/v1/characters?sort=newest&limit=2&page={page}", headers=x_api_key(creds)
            )
        ).json()
        seen += [c["name"] for c in body["data"]]
    assert seen == ["N4", "N3", "N2", "N1", "N0"]
    beyond = (await client.get("/v1/characters?page=9", headers=x_api_key(creds))).json()
    assert beyond["data"] == []
    assert beyond["pagination"]["total"] == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?page=0", "page"),
        ("?page=abc", "page"),
        ("?sort=hot", "sort"),
        ("?tags=" + ",".join(f"t{i}" for i in range(21)), "tags"),
        ("?tags=" + "x" * 33, "tags"),
    ],
)
async def test_out_of_range_values_are_400_not_clamped(
    client: httpx.AsyncClient, make_account: MakeAccount, query: str, field: str
) -> None:
    creds = await make_account()
    error = characters_error(
        await client.get(f"/v1/characters{query}", headers=x_api_key(creds)), 400, "invalid_request"
    )
    assert error["message"].startswith(field), error


async def test_trending_forgets_activity_older_than_seven_days(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    old, new = await make(client, creds, "Old", []), await make(client, creds, "New", [])
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    async with app.state.personae.sessionmaker.begin() as session:
        s = service(app, session)
        for _ in range(3):
            await s.record_chat_activity(old, start)
        await s.record_chat_activity(new, start + timedelta(days=3))
        await s.refresh_trending(start + timedelta(days=3))
    assert await names(client, creds, "?sort=trending") == ["Old", "New"]
    async with app.state.personae.sessionmaker.begin() as session:
        # Day 7 after start: the first day has left the seven-day window.
        await service(app, session).refresh_trending(start + timedelta(days=7))
    assert await names(client, creds, "?sort=trending") == ["New", "Old"]


async def test_both_tag_filter_plans_give_the_same_pages(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """Small pages of a common tag walk the sort index; one big page gathers the matches
    from the tag index and sorts them. Both must list the same characters in the same order."""
    creds = await make_account()
    fans = [await make_account() for _ in range(2)]
    for i in range(12):
        cid = await make(client, creds, f"C{i:02d}", ["common"] + (["rare"] if i % 4 == 0 else []))
        for fan in fans[: i % 3]:
            await client.post(f"/v1/characters/{cid}/like", headers=x_api_key(fan))
    await make(client, creds, "Untagged", ["other"])
    for sort in ("popular", "newest", "trending"):
        for tags in ("common", "common,rare", "rare"):
            whole = await names(client, creds, f"?tags={tags}&sort={sort}&limit=100")
            one_by_one = []
            for page in range(1, len(whole) + 1):
                one_by_one += await names(
                    client, creds, f"?tags={tags}&sort={sort}&limit=1&page={page}"
                )
            assert one_by_one == whole, (sort, tags)
            assert len(whole) == {"common": 12, "common,rare": 3, "rare": 3}[tags]
