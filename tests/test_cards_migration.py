"""Migration 0014 on characters that 0013 holds: they get empty card fields and no
lorebook, and going down and up again keeps them."""

from __future__ import annotations

import asyncio
import json

from alembic import command

from personae.db.migrate import alembic_config, upgrade_sync
from test_catalogue_migration import database_url, sql

__all__ = ["database_url"]  # the fixture, used by name

SEED = [
    ("INSERT INTO plans VALUES ('free', 5, 500, 'none', false)", {}),
    (
        "INSERT INTO accounts (id, username, plan_name, balance_micros, created_at) "
        "VALUES ('user_1', 'u1', 'free', 0, CURRENT_TIMESTAMP)",
        {},
    ),
    (
        "INSERT INTO characters (id, owner_id, name, description, personality, background, "
        "scenario, greeting, alternate_greetings, example_dialogue, appearance_prompt, tags, "
        "visibility, created_at, updated_at, likes_count, chat_count, followers_count, "
        "chats_7d) VALUES ('char_a', 'user_1', 'N', 'd', '', '', '', '', '[]', '', '', '[]', "
        "'public', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 0, 0, 0)",
        {},
    ),
]


def test_0014_adds_empty_card_fields_and_a_lorebook_table(database_url: str) -> None:
    upgrade_sync(database_url, "0013")
    asyncio.run(sql(database_url, *SEED))
    for step in ("up", "down and up again"):
        if step != "up":
            command.downgrade(alembic_config(database_url), "0013")
        upgrade_sync(database_url)
        rows, books = asyncio.run(
            sql(
                database_url,
                (
                    "SELECT description, system_prompt, post_history_instructions, "
                    "creator_notes, card_creator, card_version, card_extensions, card_extras "
                    "FROM characters",
                    {},
                ),
                ("SELECT count(*) FROM character_lorebooks", {}),
            )
        )
        [row] = rows
        assert tuple(row[:6]) == ("d", "", "", "", "", ""), step
        objects = [value if isinstance(value, dict) else json.loads(value) for value in row[6:]]
        assert objects == [{}, {}], step
        assert books == [(0,)], step
