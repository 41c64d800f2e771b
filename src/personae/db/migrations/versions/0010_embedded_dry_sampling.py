"""the bundled model's sampling stops loops with DRY

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 12:00:00

The bundled SmolLM2 gets DRY in its sampling defaults (`dry_multiplier` 0.8,
`dry_allowed_length` 4; bench/bench_persona.py: loops in 19% of answers without it, 12% with
it), where its settings still hold the defaults that 0008 gave it; an operator's own choice
is left alone.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMBEDDED_PATH = "builtin:smollm2"
BEFORE = {"temperature": 0.7, "top_p": 0.9, "min_p": 0.05}
AFTER = {**BEFORE, "dry_multiplier": 0.8, "dry_allowed_length": 4}
models = sa.table(
    "models",
    sa.column("id", sa.String),
    sa.column("engine", sa.String),
    sa.column("settings", sa.JSON),
)


def _replace(old: dict[str, float], new: dict[str, float]) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(models.c.id, models.c.settings).where(models.c.engine == "llama_cpp")
    ).all()
    for model_id, settings in rows:
        settings = dict(json.loads(settings) if isinstance(settings, str) else settings or {})
        if settings.get("path") != EMBEDDED_PATH or settings.get("sampling") != old:
            continue
        settings["sampling"] = new
        connection.execute(
            sa.update(models).where(models.c.id == model_id).values(settings=settings)
        )


def upgrade() -> None:
    _replace(BEFORE, AFTER)


def downgrade() -> None:
    _replace(AFTER, BEFORE)
