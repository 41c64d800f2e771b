"""greetings and steerable conversations

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00

Characters get the Character Card fields that shape a conversation (scenario, greeting,
alternate greetings, example dialogue). Messages can be deleted, so a conversation's next
`seq` comes from `last_seq` (the count no longer is it), set to the count for existing
rows, whose messages were numbered 1..count. Agent messages keep their regenerated
versions in `message_alternatives`. The bundled model gets the sampling defaults that
bench/bench_persona.py chose, unless its settings already name some.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import personae.db.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMBEDDED_PATH = "builtin:smollm2"
EMBEDDED_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "min_p": 0.05}
models = sa.table(
    "models",
    sa.column("id", sa.String),
    sa.column("engine", sa.String),
    sa.column("settings", sa.JSON),
)


def _embedded_sampling(add: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(models.c.id, models.c.settings).where(models.c.engine == "llama_cpp")
    ).all()
    for model_id, settings in rows:
        settings = dict(json.loads(settings) if isinstance(settings, str) else settings or {})
        if settings.get("path") != EMBEDDED_PATH:
            continue
        if add:
            settings.setdefault("sampling", EMBEDDED_SAMPLING)
        elif settings.get("sampling") == EMBEDDED_SAMPLING:
            del settings["sampling"]
        connection.execute(
            sa.update(models).where(models.c.id == model_id).values(settings=settings)
        )


def upgrade() -> None:
    with op.batch_alter_table("characters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scenario", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("greeting", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("alternate_greetings", sa.JSON(), server_default="[]", nullable=False)
        )
        batch_op.add_column(
            sa.Column("example_dialogue", sa.Text(), server_default="", nullable=False)
        )

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seq", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(
            "ix_conversations_account_character",
            ["account_id", "character_id", sa.text("updated_at DESC"), sa.text("id DESC")],
            unique=False,
        )
    conversations = sa.table(
        "conversations", sa.column("last_seq", sa.Integer), sa.column("message_count", sa.Integer)
    )
    op.execute(sa.update(conversations).values(last_seq=conversations.c.message_count))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("alternative_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("selected", sa.Integer(), server_default="0", nullable=False))

    op.create_table(
        "message_alternatives",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", personae.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_alternatives_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "position", name=op.f("pk_message_alternatives")),
    )
    _embedded_sampling(add=True)


def downgrade() -> None:
    _embedded_sampling(add=False)
    op.drop_table("message_alternatives")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("selected")
        batch_op.drop_column("alternative_count")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_account_character")
        batch_op.drop_column("last_seq")
    with op.batch_alter_table("characters", schema=None) as batch_op:
        batch_op.drop_column("example_dialogue")
        batch_op.drop_column("alternate_greetings")
        batch_op.drop_column("greeting")
        batch_op.drop_column("scenario")
