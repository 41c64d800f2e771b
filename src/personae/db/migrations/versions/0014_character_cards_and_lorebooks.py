"""character cards and lorebooks

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 18:00:00

Characters get the Character Card fields that had no column (the card's system prompt,
post-history instructions, creator notes, author and version), the card's `extensions`
kept verbatim, and `card_extras`: what else of an imported card has no column, so that an
export gives back what was imported. A character's lorebook (`character_book`) is a row of
`character_lorebooks`, one JSON document per character.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import personae.db.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXTS = ("system_prompt", "post_history_instructions", "creator_notes", "card_creator",
         "card_version")  # fmt: skip
OBJECTS = ("card_extensions", "card_extras")


def upgrade() -> None:
    with op.batch_alter_table("characters", schema=None) as batch_op:
        for name in TEXTS:
            batch_op.add_column(sa.Column(name, sa.Text(), server_default="", nullable=False))
        for name in OBJECTS:
            batch_op.add_column(sa.Column(name, sa.JSON(), server_default="{}", nullable=False))

    op.create_table(
        "character_lorebooks",
        sa.Column("character_id", sa.String(length=40), nullable=False),
        sa.Column("book", sa.JSON(), nullable=False),
        sa.Column("updated_at", personae.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name=op.f("fk_character_lorebooks_character_id_characters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("character_id", name=op.f("pk_character_lorebooks")),
    )


def downgrade() -> None:
    op.drop_table("character_lorebooks")
    with op.batch_alter_table("characters", schema=None) as batch_op:
        for name in reversed(TEXTS + OBJECTS):
            batch_op.drop_column(name)
