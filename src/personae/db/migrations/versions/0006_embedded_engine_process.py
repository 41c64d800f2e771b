"""embedded models run in a supervised llama-server: `pool_size` (in-process copies) is gone

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 00:30:00

A llama_cpp model's settings held `pool_size`, the number of copies loaded in the API
process. The engine now decodes `parallel` sequences in one process, so the key is dropped
(the engine's config forbids unknown keys); `parallel` then takes the server's default.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

models = sa.table(
    "models",
    sa.column("id", sa.String),
    sa.column("engine", sa.String),
    sa.column("settings", sa.JSON),
)


def _rewrite(drop: str | None, add: dict[str, int] | None) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(models.c.id, models.c.settings).where(models.c.engine == "llama_cpp")
    ).all()
    for model_id, settings in rows:
        settings = dict(json.loads(settings) if isinstance(settings, str) else settings or {})
        if drop is not None:
            settings.pop(drop, None)
        for key, value in (add or {}).items():
            settings.setdefault(key, value)
        connection.execute(
            sa.update(models).where(models.c.id == model_id).values(settings=settings)
        )


def upgrade() -> None:
    _rewrite("pool_size", None)


def downgrade() -> None:
    _rewrite("parallel", {"pool_size": 1})
