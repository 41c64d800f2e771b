"""Refusing query parameters that a route does not take, and parameters that hold what no
text may hold.

A misspelt parameter (`?sort_by=newest`, `?pagesize=5`) would otherwise be ignored and the
caller would get an answer to a question it did not ask. Both dialects' routers depend on
`reject_unknown_query`, which compares the request's parameter names with those the matched
route declares (its own and its dependencies'), read once per route from FastAPI's
dependency tree.

They also depend on `reject_control_characters`: a path id or a query value holding a
control character, a line break or a bidi override (`personae/text.py`, one-line text) is
400. PostgreSQL cannot even compare a string holding U+0000 (it was a 500 there, a 404 on
SQLite); refused before any lookup, such a parameter never reaches the database, and both
backends answer alike. No id holds such a character, so the answer tells nothing about
other accounts' objects: another account's id still answers exactly what a missing one does.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from personae.errors import InvalidRequest
from personae.text import refusal

# By the route's id (routes are not hashable), with the route itself: it stays alive, so
# the id is not reused by another. Routes are made once per process, so this stays small.
_declared: dict[int, tuple[APIRoute, frozenset[str]]] = {}


def declared_query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameter names of a route's dependency tree (a Pydantic model declared
    as query parameters contributes its fields)."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for param in current.query_params:
            model = param.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                names.update(f.alias or n for n, f in model.model_fields.items())
            else:
                names.add(param.alias)
        pending.extend(current.dependencies)
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """400 (in the dialect's shape) for a query parameter the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    cached = _declared.get(id(route))
    if cached is None or cached[0] is not route:
        cached = _declared[id(route)] = (route, declared_query_names(route.dependant))
    known = cached[1]
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        raise InvalidRequest(
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}: {takes}",
            details={"unknown": unknown, "allowed": sorted(known)},
        )


async def reject_control_characters(request: Request) -> None:
    """400 (in the dialect's shape) for a path or query parameter that is not one line of
    text: a control character, a tab or line break, a bidi override or isolate."""
    given = [("path", name, value) for name, value in request.path_params.items()]
    given += [("query", name, value) for name, value in request.query_params.multi_items()]
    for where, name, value in given:
        reason = refusal(value) if isinstance(value, str) else None
        if reason is not None:
            raise InvalidRequest(
                f"{name}: {reason}",
                details={"fields": [{"field": name, "in": where, "message": reason}]},
            )
