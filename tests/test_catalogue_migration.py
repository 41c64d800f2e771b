"""Migration 0011 on a catalogue that 0010 holds: the tag rows get their characters' sort
keys and other tags, the counts are counted, and going down and up again keeps them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import BACKENDS, PG_SERVER, _pg_dsn
from personae.db.migrate import alembic_config, upgrade_sync

# name: (visibility, tags, likes, chat_count, chats_7d)
CHARACTERS: dict[str, tuple[str, list[str], int, int, int]] = {
    "char_a": ("public", ["fantasy", "female"], 3, 9, 1),
    "char_b": ("private", ["fantasy"], 0, 2, 0),
    "char_c": ("public", [], 1, 1, 0),
    "char_d": ("public", ["female", "slice_of_life", "cozy"], 7, 20, 4),
}


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the test migrates it from nothing)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'personae.db'}"
        return
    if PG_SERVER == "off":
        pytest.skip("PostgreSQL tests disabled (PERSONAE_TEST_POSTGRES_URL=off)")
    name = f"personae_migration_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_pg_dsn(PG_SERVER.rpartition("/")[2]))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def sql(url: str, *statements: tuple[str, dict[str, Any]]) -> list[list[Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            results = [await conn.execute(text(s), p) for s, p in statements]
            return [list(r.all()) if r.returns_rows else [] for r in results]
    finally:
        await engine.dispose()


def seed_0010(url: str) -> None:
    """A catalogue as 0010 stores it: tag rows with their visibility only."""
    statements = [
        ("INSERT INTO plans VALUES ('free', 5, 500, 'none', false)", {}),
        (
            "INSERT INTO accounts (id, username, plan_name, balance_micros, created_at) "
            "VALUES ('user_1', 'u1', 'free', 0, CURRENT_TIMESTAMP)",
            {},
        ),
    ]
    for cid, (visibility, tags, likes, chats, chats_7d) in CHARACTERS.items():
        statements.append(
            (
                "INSERT INTO characters (id, owner_id, name, description, personality, "
                "background, scenario, greeting, alternate_greetings, example_dialogue, "
                "appearance_prompt, tags, visibility, created_at, updated_at, likes_count, "
                "chat_count, followers_count, chats_7d) VALUES (:id, 'user_1', 'N', '', '', "
                "'', '', '', '[]', '', '', :tags, :visibility, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP, :likes, :chats, 0, :chats_7d)",
                {
                    "id": cid,
                    "tags": json.dumps(tags),
                    "visibility": visibility,
                    "likes": likes,
                    "chats": chats,
                    "chats_7d": chats_7d,
                },
            )
        )
        statements += [
            (
                "INSERT INTO character_tags (character_id, tag, visibility) VALUES (:c, :t, :v)",
                {"c": cid, "t": tag, "v": visibility},
            )
            for tag in tags
        ]
    asyncio.run(sql(url, *statements))


def test_0011_copies_the_sort_keys_and_counts_the_catalogue(database_url: str) -> None:
    upgrade_sync(database_url, "0010")
    seed_0010(database_url)
    for step in ("up", "down and up again"):
        if step != "up":
            command.downgrade(alembic_config(database_url), "0010")
        upgrade_sync(database_url)
        differing, tags, counts = asyncio.run(
            sql(
                database_url,
                (
                    "SELECT count(*) FROM character_tags t JOIN characters c "
                    "ON c.id = t.character_id WHERE t.visibility != c.visibility "
                    "OR t.likes_count != c.likes_count OR t.chat_count != c.chat_count "
                    "OR t.chats_7d != c.chats_7d OR t.created_at != c.created_at",
                    {},
                ),
                ("SELECT character_id, tag, other_tags FROM character_tags", {}),
                ("SELECT tag, public_characters FROM catalogue_counts", {}),
            )
        )
        assert differing == [(0,)], step
        others = {(cid, tag): set(o.strip(",").split(",")) - {""} for cid, tag, o in tags}
        assert others == {
            (cid, tag): set(character[1]) - {tag}
            for cid, character in CHARACTERS.items()
            for tag in character[1]
        }, step
        assert all(o.startswith(",") and o.endswith(",") for _, _, o in tags), step
        assert dict(counts) == {
            "": 3,
            "fantasy": 1,
            "female": 2,
            "slice_of_life": 1,
            "cozy": 1,
        }, step
