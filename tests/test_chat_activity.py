"""Chat messages counted toward trending in batches (personae/character/activity.py):
concurrent turns all counted once written, the character, its tag rows and the day's
bucket in agreement, a character deleted before the write, and a shutdown that writes."""

from __future__ import annotations

import asyncio

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from conftest import MakeAccount, create_account, make_client, truncate
from helpers import x_api_key
from personae.app import create_app
from personae.config import Settings
from personae.models import Character, CharacterActivity, CharacterTag
from personae.state import AppState

TINY = {"max_tokens": 2, "temperature": 0}
TURNS = 6


async def new_character(client: httpx.AsyncClient, key: dict[str, str], name: str) -> str:
    body = {
        "name": name,
        "description": "A courier",
        "personality": "Dry",
        "background": "Docks",
        "tags": ["noir", "city"],
        "visibility": "public",
    }
    response = await client.post("/v1/characters", json=body, headers=key)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def counts(state: AppState, character_id: str) -> tuple[int, list[int], int]:
    """The character's `chats_7d`, its tag rows' copies, and its day buckets' sum."""
    async with state.sessionmaker() as session:
        own = await session.scalar(select(Character.chats_7d).where(Character.id == character_id))
        tags = await session.scalars(
            select(CharacterTag.chats_7d).where(CharacterTag.character_id == character_id)
        )
        buckets = await session.scalar(
            select(func.coalesce(func.sum(CharacterActivity.chats), 0)).where(
                CharacterActivity.character_id == character_id
            )
        )
    return int(own or 0), list(tags), int(buckets or 0)


async def test_concurrent_turns_are_all_counted_once_written(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    key = x_api_key(await make_account())
    char = await new_character(client, key, "Vexa")

    async def turn(n: int) -> None:
        response = await client.post(
            f"/v1/chat/{char}/messages", json={"message": f"Hi {n}"} | TINY, headers=key
        )
        assert response.status_code == 200, response.text

    await asyncio.gather(*(turn(n) for n in range(TURNS)))
    await state.chat_activity.flush()
    assert await counts(state, char) == (TURNS, [TURNS, TURNS], TURNS)
    await state.chat_activity.flush()  # nothing left over to count twice
    assert await counts(state, char) == (TURNS, [TURNS, TURNS], TURNS)


async def test_a_character_deleted_before_the_write_is_left_out(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    key = x_api_key(await make_account())
    kept = await new_character(client, key, "Kept")
    deleted = await new_character(client, key, "Gone")
    for char in (kept, deleted):
        response = await client.post(
            f"/v1/chat/{char}/messages", json={"message": "Hi"} | TINY, headers=key
        )
        assert response.status_code == 200, response.text
    assert (await client.delete(f"/v1/characters/{deleted}", headers=key)).status_code == 200
    await state.chat_activity.flush()
    assert await counts(state, kept) == (1, [1, 1], 1)
    assert await counts(state, deleted) == (0, [], 0)


async def test_a_shutdown_writes_the_tally(settings: Settings) -> None:
    async with truncate(settings):
        app = create_app(settings)
        async with LifespanManager(app), make_client(app) as client:
            key = x_api_key(await create_account(app))
            char = await new_character(client, key, "Vexa")
            response = await client.post(
                f"/v1/chat/{char}/messages", json={"message": "Hi"} | TINY, headers=key
            )
            assert response.status_code == 200, response.text
        again = create_app(settings)
        async with LifespanManager(again):
            assert await counts(again.state.personae, char) == (1, [1, 1], 1)
