"""messages keep their token counts

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 13:00:00

`messages.prompt_tokens` is what a message's content costs in a prompt, counted by the
tokenizer of the model in `messages.prompt_tokens_model`, so that fitting a history reads
counts instead of tokenizing every kept message on every turn. Existing messages start
uncounted: each is counted by the next turn that reads it, and stored then.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prompt_tokens_model", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("prompt_tokens_model")
        batch_op.drop_column("prompt_tokens")
