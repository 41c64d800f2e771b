"""image jobs and webhook events remember the request that caused them

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 14:00:00

`images.request_id` and `webhook_events.request_id` hold the `X-Request-Id` of the request
whose transaction wrote the row (null for rows written outside a request, and for rows
from before this revision), so that the worker's log lines for the job, and a delivery's,
carry the id the client saw.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("images", "webhook_events")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("request_id")
