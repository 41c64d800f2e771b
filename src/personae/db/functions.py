"""SQL functions that the two back ends spell differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class strpos(FunctionElement[int]):  # lower case, as SQL names it (and func.*)
    """`strpos(text, part)`: where `part` first occurs in `text`, from 1; 0 if nowhere.
    Exact (no pattern characters, no case folding), unlike LIKE; `instr` in SQLite."""

    type = Integer()
    inherit_cache = True


@compiles(strpos)
def _strpos_sqlite(element: strpos, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(strpos, "postgresql")
def _strpos_postgresql(element: strpos, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"
