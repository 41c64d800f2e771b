"""self-service accounts for the console, and the usage ledger

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24 20:30:00

* `accounts.password_hash` (argon2id; null: no console sign-in) and `accounts.is_admin`;
* `console_sessions`: signed-in browsers, by a SHA-256 of the cookie's token;
* `invites`: single-use sign-up codes (`PERSONAE_SIGNUP=invite`);
* `usage_ledger`: requests, tokens and cost per account, UTC day, kind and model. Rows
  start with this revision: the usage before it is in `monthly_usage` (requests) only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from personae.db.base import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(255), nullable=True))
        batch_op.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_console_sessions_account_id", "console_sessions", ["account_id"])
    op.create_table(
        "invites",
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("created_by", sa.String(40), sa.ForeignKey("accounts.id", ondelete="SET NULL")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_by", sa.String(40), sa.ForeignKey("accounts.id", ondelete="SET NULL")),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "usage_ledger",
        sa.Column(
            "account_id",
            sa.String(40),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("model_id", sa.String(40), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("usage_ledger")
    op.drop_table("invites")
    op.drop_index("ix_console_sessions_account_id", "console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("is_admin")
        batch_op.drop_column("password_hash")
