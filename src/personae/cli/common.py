"""What every CLI command shares: one transaction against the configured database,
errors printed without tracebacks, JSON or table output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from personae.app import prepare_database
from personae.config import Settings
from personae.errors import PersonaeError
from personae.state import AppState

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def run_in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction, after migrating the database."""

    async def main() -> T:
        state = AppState.build(Settings())
        try:
            await prepare_database(state)
            async with state.sessionmaker.begin() as session:
                return await work(session)
        finally:
            await state.close()

    return exit_on_error(lambda: asyncio.run(main()))


def exit_on_error(fn: Callable[[], T]) -> T:
    """Call `fn`; a PersonaeError becomes a one-line message and exit status 1."""
    try:
        return fn()
    except PersonaeError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
