"""The SQLite dialect with one thread hop per statement (personae/db/sqlite_driver.py):
what SQLAlchemy reads of a cursor after a statement, errors, and concurrent sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from personae.config import Settings
from personae.db.session import create_engine
from personae.db.sqlite_driver import DRIVER


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(Settings(data_dir=tmp_path))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_the_server_uses_it_for_sqlite(engine: AsyncEngine) -> None:
    assert engine.dialect.driver == DRIVER
    assert engine.url.drivername == f"sqlite+{DRIVER}"


async def test_rows_counts_and_ids(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1
        many = await connection.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}, {"v": "d"}]
        )
        assert many.rowcount == 3
        updated = await connection.execute(text("UPDATE t SET v = v || '!' WHERE id > 2"))
        assert updated.rowcount == 2
        returned = await connection.execute(
            text("UPDATE t SET v = 'x' WHERE id = 1 RETURNING id, v")
        )
        assert returned.all() == [(1, "x")]
        rows = await connection.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert list(rows.keys()) == ["id", "v"]
        assert rows.all() == [(1, "x"), (2, "b"), (3, "c!"), (4, "d!")]
        assert (await connection.execute(text("SELECT v FROM t WHERE id = 9"))).all() == []


async def test_errors_are_the_dbapi_errors_and_roll_back(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
        await connection.rollback()
        with pytest.raises(OperationalError):
            await connection.execute(text("SELECT nope FROM t"))
        await connection.rollback()
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 0


async def test_concurrent_writers_each_see_their_own_results(engine: AsyncEngine) -> None:
    """Many sessions at once, each on its own pooled connection and thread: every statement's
    rows and ids reach the statement that ran it."""

    async def writer(n: int) -> list[tuple[int, str]]:
        async with engine.begin() as connection:
            ids = []
            for i in range(10):
                result = await connection.execute(
                    text("INSERT INTO t (v) VALUES (:v) RETURNING id, v"), {"v": f"{n}-{i}"}
                )
                ids.append(tuple(result.one()))
            return ids

    results = await asyncio.gather(*(writer(n) for n in range(8)))
    for n, rows in enumerate(results):
        assert [v for _, v in rows] == [f"{n}-{i}" for i in range(10)]
    all_ids = [row_id for rows in results for row_id, _ in rows]
    assert len(set(all_ids)) == 80
    async with engine.connect() as connection:
        stored = dict((await connection.execute(text("SELECT id, v FROM t"))).all())
    assert stored == {row_id: v for rows in results for row_id, v in rows}
