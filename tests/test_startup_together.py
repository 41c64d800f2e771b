"""Processes that start at once on a fresh database (`serve --workers 4`, replicas, a
worker beside them): one migrates and seeds, the others find it done; none fails, and
nothing is seeded twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from conftest import fresh_postgres_database
from personae.account.plans import DEFAULT_PLANS
from personae.config import Settings
from personae.db.migrate import MIGRATIONS_DIR
from personae.db.session import create_engine
from personae.models import Model, Plan

PROCESSES = 4


def start_together(env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """PROCESSES `personae accounts create` at once, each migrating and seeding first."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "personae",
                "accounts",
                "create",
                "--username",
                f"starter{i}",
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


async def seeded(settings: Settings) -> tuple[str, int, int, int]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            version = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one()
            plans = (await connection.execute(select(func.count()).select_from(Plan))).scalar_one()
            llms = (
                await connection.execute(
                    select(func.count()).select_from(Model).where(Model.engine == "llama_cpp")
                )
            ).scalar_one()
            placeholders = (
                await connection.execute(
                    select(func.count()).select_from(Model).where(Model.engine == "placeholder")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return str(version), int(plans), int(llms), int(placeholders)


def check(env: dict[str, str], settings: Settings) -> None:
    results = start_together(env)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout)["api_key"].startswith("prs_")
    version, plans, llms, placeholders = asyncio.run(seeded(settings))
    heads = [p.stem.split("_")[0] for p in (MIGRATIONS_DIR / "versions").glob("0*.py")]
    assert version == max(heads)
    assert (plans, llms, placeholders) == (len(DEFAULT_PLANS), 1, 1)


def base_env(data_dir: Path) -> dict[str, str]:
    env = os.environ | {"PERSONAE_DATA_DIR": str(data_dir)}
    for name in ("PERSONAE_DATABASE_URL", "PERSONAE_REDIS_URL", "PERSONAE_QUEUE_URL"):
        env.pop(name, None)
    return env


def test_four_processes_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    check(env, Settings(data_dir=tmp_path, _env_file=None))  # type: ignore[call-arg]


@pytest.mark.postgres
def test_four_processes_on_a_fresh_postgres_database(tmp_path: Path) -> None:
    with fresh_postgres_database("personae_start") as url:
        env = base_env(tmp_path) | {"PERSONAE_DATABASE_URL": url}
        check(env, Settings(data_dir=tmp_path, database_url=url, _env_file=None))  # type: ignore[call-arg]
