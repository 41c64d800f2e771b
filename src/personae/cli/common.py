"""What every CLI command shares: one transaction against the configured database,
errors printed without tracebacks, JSON or table output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from personae.app import prepare_database
from personae.config import Settings
from personae.errors import PersonaeError
from personae.state import AppState

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
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
    """Print rows under their column names. An id or key is what an operator copies into
    the next command, so its column is never wrapped or cut: it is as wide as its longest
    value and the other columns wrap to make room."""
    cells = [[_cell(v) for v in row] for row in rows]
    table = Table(title=title)
    for index, column in enumerate(columns):
        if _is_identifier(column):
            longest = max((len(row[index]) for row in cells), default=0)
            table.add_column(column, no_wrap=True, min_width=max(longest, len(column)))
        else:
            table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def print_record(title: str, record: dict[str, Any]) -> None:
    """Print one object as a field per line: as a single row of many columns, every header
    and value would wrap at 80 columns. Ids and keys are never wrapped, as in tables."""
    cells = {field: _cell(v) for field, v in record.items()}
    longest = max((len(v) for field, v in cells.items() if _is_identifier(field)), default=0)
    table = Table(title=title, show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold", min_width=longest or None)
    for field, value in cells.items():
        table.add_row(field, value)
    console.print(table)


def _is_identifier(column: str) -> bool:
    """Whether a column holds ids, keys or key prefixes."""
    return column in {"id", "prefix", "api_key"} or column.endswith(("_id", "_prefix"))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
