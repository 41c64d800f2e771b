"""the catalogue's sort keys on the tag rows, and its totals kept

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 12:00:00

A tag row gets copies of its character's sort keys (`likes_count`, `chat_count`,
`chats_7d`, `created_at`) and the character's other tags (`other_tags`, `,a,b,`), and one
index per catalogue order, so that a tagged page is a range of one index whatever its depth
or the number of tags (docs/architecture.md, "Catalogue query plans"). The old
`(tag, visibility, character_id)` index, which only the count and the joins of the old
plans used, goes. `catalogue_counts` holds the number of public characters per tag and in
all (tag ""), so that a page's total is read, not counted, and a version that changes with
each count, so that a count of several tags can be kept while their versions hold.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import personae.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("likes_count", "chat_count", "chats_7d", "created_at")
characters = sa.table(
    "characters",
    sa.column("id", sa.String),
    sa.column("visibility", sa.String),
    *(sa.column(key) for key in KEYS),
)
tags = sa.table(
    "character_tags",
    sa.column("character_id", sa.String),
    sa.column("tag", sa.String),
    sa.column("visibility", sa.String),
    sa.column("other_tags", sa.Text),
    *(sa.column(key) for key in KEYS),
)
counts = sa.table(
    "catalogue_counts",
    sa.column("tag", sa.String),
    sa.column("public_characters", sa.Integer),
    sa.column("version", sa.BigInteger),
)
ORDERS = {
    "popular": ("likes_count", "chat_count"),
    "trending": ("chats_7d", "chat_count"),
    "newest": ("created_at",),
}


def upgrade() -> None:
    # Added with defaults so that the rows there hold values, filled in, then the defaults
    # dropped: the application always writes these columns itself.
    with op.batch_alter_table("character_tags") as batch_op:
        for key in ("likes_count", "chat_count", "chats_7d"):
            batch_op.add_column(sa.Column(key, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column(
                "created_at",
                personae.db.base.UTCDateTime(),
                nullable=False,
                server_default=sa.text("'1970-01-01 00:00:00'"),
            )
        )
        batch_op.add_column(sa.Column("other_tags", sa.Text(), nullable=False, server_default=","))
        batch_op.drop_index("ix_character_tags_tag_visibility")

    owner = characters.c.id == tags.c.character_id
    other = tags.alias("other")
    others = (
        sa.select(sa.func.aggregate_strings(other.c.tag, ","))
        .where(other.c.character_id == tags.c.character_id, other.c.tag != tags.c.tag)
        .scalar_subquery()
    )
    op.execute(
        tags.update().values(
            {key: sa.select(characters.c[key]).where(owner).scalar_subquery() for key in KEYS}
            | {"other_tags": sa.func.coalesce("," + others + ",", ",")}
        )
    )

    with op.batch_alter_table("character_tags") as batch_op:
        for key in (*KEYS, "other_tags"):
            batch_op.alter_column(key, server_default=None)
    # Outside the batch: SQLite's batch copies the table, and cannot copy a DESC column.
    for order, keys in ORDERS.items():
        op.create_index(
            f"ix_character_tags_{order}",
            "character_tags",
            [
                "tag",
                "visibility",
                *(sa.literal_column(f"{key} DESC") for key in keys),
                sa.literal_column("character_id DESC"),
                "other_tags",
            ],
            unique=False,
        )

    op.create_table(
        "catalogue_counts",
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("public_characters", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_catalogue_counts")),
    )
    public = sa.literal("public")
    columns = ["tag", "public_characters", "version"]
    op.execute(
        counts.insert().from_select(
            columns,
            sa.select(sa.literal(""), sa.func.count(), sa.literal(0)).where(
                characters.c.visibility == public
            ),
        )
    )
    op.execute(
        counts.insert().from_select(
            columns,
            sa.select(tags.c.tag, sa.func.count(), sa.literal(0))
            .where(tags.c.visibility == public)
            .group_by(tags.c.tag),
        )
    )


def downgrade() -> None:
    op.drop_table("catalogue_counts")
    for order in ORDERS:
        op.drop_index(f"ix_character_tags_{order}", table_name="character_tags")
    with op.batch_alter_table("character_tags") as batch_op:
        for key in (*KEYS, "other_tags"):
            batch_op.drop_column(key)
        batch_op.create_index(
            "ix_character_tags_tag_visibility", ["tag", "visibility", "character_id"], unique=False
        )
