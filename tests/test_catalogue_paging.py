"""`GET /v1/characters` read by cursor as well as by page, and the copies that make a tagged
page one index range (the sort keys on the tag rows, the counts) kept in step with every
change to a character."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from conftest import MakeAccount
from helpers import characters_error, x_api_key
from personae.account.service import AccountService, Credentials
from personae.character.cursor import encode_cursor
from personae.character.service import CharacterService

SORTS = ("popular", "trending", "newest")
FILTERS = ("", "common", "common,rare", "rare")


async def make(
    client: httpx.AsyncClient, creds: Credentials, name: str, tags: list[str], **kw: Any
) -> str:
    body = {"name": name, "description": "d", "personality": "p", "background": "b"}
    response = await client.post(
        "/v1/characters", json=body | {"tags": tags} | kw, headers=x_api_key(creds)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def reader(app: FastAPI) -> Credentials:
    """An account whose rate limit these many reads never reach."""
    async with app.state.personae.sessionmaker.begin() as session:
        accounts = AccountService(session)
        creds = await accounts.create_account(f"r{uuid.uuid4().hex[:12]}", None, "enterprise")
        await accounts.set_plan(creds.account, "enterprise", rate_limit_per_minute=100_000)
    return creds


async def listing(client: httpx.AsyncClient, creds: Credentials, **query: Any) -> dict[str, Any]:
    response = await client.get("/v1/characters", params=query, headers=x_api_key(creds))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [c["id"] for c in body["data"]]


async def whole(client: httpx.AsyncClient, creds: Credentials, sort: str, tags: str) -> list[str]:
    body = await listing(client, creds, sort=sort, tags=tags, limit=100)
    assert body["pagination"]["total"] == len(body["data"])
    assert body["pagination"]["next_cursor"] is None
    return ids(body)


async def seed(app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount) -> Credentials:
    """Thirteen characters tagged `common` (every third `rare` too) whose likes, chat counts
    and chats this week tie often, so that the id decides many places; and two that no
    filter here lists (one private)."""
    creds = await reader(app)
    fans = [await make_account() for _ in range(3)]
    made = []
    for i in range(13):
        cid = await make(client, creds, f"C{i:02d}", ["common"] + (["rare"] if i % 3 == 0 else []))
        for fan in fans[: i % 4]:
            liked = await client.post(f"/v1/characters/{cid}/like", headers=x_api_key(fan))
            assert liked.status_code == 200, liked.text
        made.append(cid)
    await make(client, creds, "Other", ["other"])
    await make(client, creds, "Hidden", ["common", "rare"], visibility="private")
    state = app.state.personae
    async with state.sessionmaker.begin() as session:
        characters = CharacterService(session, state.storage)
        for i, cid in enumerate(made):
            for _ in range(i % 2):
                await characters.record_conversation_started(cid)
            for _ in range(i % 3):
                await characters.record_chat_activity(cid)
    return creds


async def test_cursor_paging_reads_what_page_paging_reads(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await seed(app, client, make_account)
    for sort in SORTS:
        for tags in FILTERS:
            everything = await whole(client, creds, sort, tags)
            assert len(everything) == {"": 14, "common": 13, "common,rare": 5, "rare": 5}[tags]
            # By page, two at a time: the later pages are read from the end of the order.
            by_page: list[str] = []
            pages = math.ceil(len(everything) / 2)
            for page in range(1, pages + 1):
                body = await listing(client, creds, sort=sort, tags=tags, limit=2, page=page)
                assert body["pagination"]["pages"] == pages
                assert (body["pagination"]["next_cursor"] is None) == (page == pages)
                by_page += ids(body)
            assert by_page == everything, (sort, tags)
            # By cursor: the first page's cursor, then three at a time (a limit may change).
            body = await listing(client, creds, sort=sort, tags=tags, limit=2)
            by_cursor = ids(body)
            while (cursor := body["pagination"]["next_cursor"]) is not None:
                body = await listing(client, creds, sort=sort, tags=tags, limit=3, cursor=cursor)
                assert body["pagination"] | {"next_cursor": None} == {
                    "total": len(everything),
                    "page": None,
                    "limit": 3,
                    "pages": math.ceil(len(everything) / 3),
                    "next_cursor": None,
                }
                by_cursor += ids(body)
            assert by_cursor == everything, (sort, tags)
            # A cursor from the middle of a page-numbered read goes on from there.
            middle = await listing(client, creds, sort=sort, tags=tags, limit=2, page=2)
            rest = await listing(
                client, creds, sort=sort, tags=tags, cursor=middle["pagination"]["next_cursor"]
            )
            assert ids(rest) == everything[4:], (sort, tags)


async def test_a_page_past_the_end_is_empty(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await seed(app, client, make_account)
    for tags in FILTERS:
        body = await listing(client, creds, tags=tags, limit=100, page=10_000)
        assert body["data"] == []
        assert body["pagination"]["next_cursor"] is None
        assert body["pagination"]["total"] == len(await whole(client, creds, "popular", tags))


async def test_a_bad_cursor_is_400(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    for i in range(3):
        await make(client, creds, f"C{i}", ["common"])
    first = await listing(client, creds, limit=1, tags="common")
    good = first["pagination"]["next_cursor"]
    assert good is not None

    def made(key: tuple[Any, ...], sort: str = "popular", tags: tuple[str, ...] = ()) -> str:
        return encode_cursor(sort, tags, key)

    refused: list[tuple[dict[str, Any], str]] = [
        ({"cursor": "not a cursor!"}, "cursor: not a cursor"),
        ({"cursor": "e30"}, "cursor: not a cursor"),  # {}
        ({"cursor": "W10"}, "cursor: not a cursor"),  # []
        ({"cursor": "_w"}, "cursor: not a cursor"),  # not UTF-8
        ({"cursor": ""}, "cursor"),
        ({"cursor": "A" * 600}, "cursor"),
        ({"cursor": good}, "cursor: made for another sort or tag filter"),  # no tags
        ({"cursor": good, "tags": "common", "sort": "newest"}, "cursor: made for another"),
        ({"cursor": good, "tags": "common,rare"}, "cursor: made for another"),
        ({"cursor": made((1, 2))}, "cursor: not a cursor of this list"),
        ({"cursor": made((1, 2, "char_x", 4))}, "cursor: not a cursor of this list"),
        ({"cursor": made((2**40, 0, "char_x"))}, "cursor: not a cursor of this list"),
        ({"cursor": made((True, 0, "char_x"))}, "cursor: not a cursor of this list"),
        ({"cursor": made((1.5, 0, "char_x"))}, "cursor: not a cursor of this list"),
        ({"cursor": made((1, 0, "char\x00x"))}, "cursor: not a cursor of this list"),
        ({"cursor": made((1, 0, ""))}, "cursor: not a cursor of this list"),
        (
            {"cursor": made(("2026-01-01T00:00:00", "char_x"), "newest"), "sort": "newest"},
            "cursor: not a cursor of this list",  # no time zone
        ),
        (
            {"cursor": made(("0001-01-01T00:00:00+01:00", "char_x"), "newest"), "sort": "newest"},
            "cursor: not a cursor of this list",  # before year 1 in UTC
        ),
        ({"cursor": good, "tags": "common", "page": 1}, "cursor: give either page or cursor"),
        ({"cursor": good, "tags": "common", "page": 2}, "cursor: give either page or cursor"),
    ]
    for query, message in refused:
        response = await client.get("/v1/characters", params=query, headers=x_api_key(creds))
        error = characters_error(response, 400, "invalid_request")
        assert error["message"].startswith(message), (query, error)
    # The good one, where it belongs.
    after = await listing(client, creds, limit=1, tags="common", cursor=good)
    assert after["pagination"]["page"] is None
    assert len(after["data"]) == 1


async def check_lists_agree(client: httpx.AsyncClient, creds: Credentials) -> None:
    """Each tagged list (read from the tag rows and their copies of the sort keys) is the
    untagged list (read from the characters) cut to the characters showing those tags, in
    every order, with the same totals; by page and by cursor."""
    for sort in SORTS:
        everyone = (await listing(client, creds, sort=sort, limit=100))["data"]
        for tags in FILTERS[1:]:
            wanted = set(tags.split(","))
            expected = [c["id"] for c in everyone if wanted <= set(c["tags"])]
            assert await whole(client, creds, sort, tags) == expected, (sort, tags)
            body = await listing(client, creds, sort=sort, tags=tags, limit=1)
            by_cursor = ids(body)
            while (cursor := body["pagination"]["next_cursor"]) is not None:
                body = await listing(client, creds, sort=sort, tags=tags, limit=1, cursor=cursor)
                by_cursor += ids(body)
            assert by_cursor == expected, (sort, tags)


async def test_tagged_lists_follow_every_change(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await reader(app)
    fan = await make_account()
    key = x_api_key(creds)
    a, b, c = [await make(client, creds, name, ["common", "rare"]) for name in "ABC"]
    d = await make(client, creds, "D", ["common"])
    await check_lists_agree(client, creds)

    async def first(sort: str, tags: str) -> str:
        return ids(await listing(client, creds, sort=sort, tags=tags))[0]

    # A like puts B first in the popular lists; taking it back undoes that.
    assert (await client.post(f"/v1/characters/{b}/like", headers=x_api_key(fan))).json()[
        "likes"
    ] == 1
    assert await first("popular", "common,rare") == b
    await check_lists_agree(client, creds)
    unliked = await client.delete(f"/v1/characters/{b}/like", headers=x_api_key(fan))
    assert unliked.json()["likes"] == 0
    await check_lists_agree(client, creds)

    # A chat (a conversation started, a message this week) puts A first in trending, and
    # ahead of its ties in popular (chat count).
    chat = await client.post(
        f"/v1/chat/{a}/messages", json={"message": "Hi", "max_tokens": 4}, headers=key
    )
    assert chat.status_code == 200, chat.text
    await app.state.personae.chat_activity.flush()  # the message's count toward trending
    assert await first("trending", "rare") == a
    assert await first("popular", "common") == a
    await check_lists_agree(client, creds)

    # Trending forgets last week: D, with more conversations but none this week, passes A
    # once the refresh has taken A's message out of the window.
    state = app.state.personae
    async with state.sessionmaker.begin() as session:
        characters = CharacterService(session, state.storage)
        for _ in range(2):
            await characters.record_conversation_started(d)
    assert await first("trending", "common") == a
    async with state.sessionmaker.begin() as session:
        later = datetime.now(UTC) + timedelta(days=8)
        await CharacterService(session, state.storage).refresh_trending(later)
    assert await first("trending", "common") == d
    await check_lists_agree(client, creds)

    # Private, C leaves the lists and their totals; public again, it comes back.
    for visibility, count in (("private", 2), ("public", 3)):
        changed = await client.patch(
            f"/v1/characters/{c}", json={"visibility": visibility}, headers=key
        )
        assert changed.status_code == 200, changed.text
        body = await listing(client, creds, tags="rare")
        assert body["pagination"]["total"] == count
        assert (c in ids(body)) == (visibility == "public")
        await check_lists_agree(client, creds)

    # A tag edit moves B out of `rare` and D into it, with the counts.
    for cid, tags in ((b, ["common"]), (d, ["rare", "common", "new"])):
        changed = await client.patch(f"/v1/characters/{cid}", json={"tags": tags}, headers=key)
        assert changed.status_code == 200, changed.text
    assert set(ids(await listing(client, creds, tags="rare"))) == {a, c, d}
    assert ids(await listing(client, creds, tags="new,rare")) == [d]
    await check_lists_agree(client, creds)

    # A tag edit and a visibility change at once, then a deletion.
    changed = await client.patch(
        f"/v1/characters/{a}", json={"tags": ["other"], "visibility": "private"}, headers=key
    )
    assert changed.status_code == 200, changed.text
    assert (await client.delete(f"/v1/characters/{c}", headers=key)).status_code == 200
    body = await listing(client, creds, tags="rare")
    assert ids(body) == [d]
    assert body["pagination"]["total"] == 1
    assert (await listing(client, creds))["pagination"]["total"] == 2
    await check_lists_agree(client, creds)


async def test_twenty_long_tags_of_four_byte_letters(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """The longest `other_tags` there can be (19 tags of 32 four-byte letters) still fits
    PostgreSQL's index rows (2,704 bytes at most)."""
    creds = await make_account()
    tags = ["".join(chr(0x20000 + 32 * t + i) for i in range(32)) for t in range(20)]
    cid = await make(client, creds, "Many", tags)
    await make(client, creds, "Few", tags[:1])
    assert ids(await listing(client, creds, tags=",".join(tags[::-1]))) == [cid]
    assert len(ids(await listing(client, creds, tags=tags[0]))) == 2
