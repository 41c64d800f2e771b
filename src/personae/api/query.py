"""Refusing query parameters that a route does not take.

A misspelt parameter (`?sort_by=newest`, `?pagesize=5`) would otherwise be ignored and the
caller would get an answer to a question it did not ask. Both dialects' routers depend on
`reject_unknown_query`, which compares the request's parameter names with those the matched
route declares (its own and its dependencies'), read once per route from FastAPI's
dependency tree.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from personae.errors import InvalidRequest

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
