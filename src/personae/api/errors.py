"""Exception handlers: every error leaves in the dialect's shape, never with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from personae.api.dialect import error_response
from personae.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PersonaeError,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from personae.redact import redact

log = logging.getLogger("personae")

_BY_STATUS: dict[int, type[PersonaeError]] = {
    400: InvalidRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def _field(loc: tuple[Any, ...]) -> tuple[str, str]:
    """('body', 'tags', 0) -> ('tags[0]', 'body')."""
    where = str(loc[0]) if loc else "request"
    name = ""
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or where, where


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    return invalid_request(exc.errors())


def invalid_request(errors: Sequence[Any]) -> InvalidRequest:
    """A 400 naming each bad field, from pydantic's error list (locations start with
    where the field was: body, query, path, header)."""
    fields = []
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "invalid JSON")
            return InvalidRequest(
                f"Malformed JSON body: {reason}", details={"body": "json_invalid"}
            )
        name, where = _field(tuple(err.get("loc", ())))
        name = redact(name)  # a key pasted as a field name is not repeated back
        fields.append({"field": name, "in": where, "message": err.get("msg", "invalid")})
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "Invalid request"
    return InvalidRequest(message, details={"fields": fields})


def no_such_endpoint(request: Request) -> NotFound:
    """404 for a path no route takes. A trailing slash is a 404 too (never a redirect: the
    redirect's Location would come from the request's Host header); the message names the
    path that exists, relative, so nothing in it comes from the Host."""
    path = request.url.path
    message = f"No such endpoint: {request.method} {path}"
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if other and other != path:
        scope = {**request.scope, "path": other}
        if any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
            message += f" (did you mean {other}?)"
    return NotFound(message)


def respond(request: Request, error: PersonaeError) -> Response:
    """The error in the shape the request's path speaks: the page a front end installed
    as `app.state.error_page` (the console's, for its own paths), else the dialect's body."""
    page: Callable[[Request, PersonaeError], Response | None] | None = getattr(
        request.app.state, "error_page", None
    )
    if page is not None and (response := page(request, error)) is not None:
        return response
    return error_response(request.url.path, error)


async def _personae_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PersonaeError)
    return respond(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return respond(request, validation_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    kind = _BY_STATUS.get(exc.status_code)
    if exc.status_code == 404:
        error: PersonaeError = no_such_endpoint(request)
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        error = MethodNotAllowed(
            f"Method {request.method} not allowed on {request.url.path}",
            details={"allowed": allowed},
            # Starlette's own `Allow` (in exc.headers) names the methods of the first route
            # that matched the path alone; every method of the path belongs there.
            headers={"Allow": ", ".join(allowed)},
        )
        return respond(request, error)
    elif kind is not None:
        error = kind(str(exc.detail))
    else:
        error = PersonaeError(str(exc.detail))
        error.status = exc.status_code
    error.headers.update(exc.headers or {})
    return respond(request, error)


# The order methods are listed in `Allow`.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this request's path (each of our routes takes
    one method, so a path with GET, PATCH and DELETE is three routes). As OpenAPI reads
    paths, a concrete path wins over a template: the methods of `/v1/characters/import`
    are its own, not those of `/v1/characters/{character_id}`, which it also matches."""
    concrete: set[str] = set()
    templated: set[str] = set()
    # FastAPI keeps included routers as branches; this walks their routes, prefixes applied.
    for route in iter_route_contexts(request.app.routes):
        if not route.methods:
            continue
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            (templated if "{" in (route.path_format or "{") else concrete).update(route.methods)
    methods = concrete or templated
    return sorted(methods, key=lambda m: (*_METHOD_ORDER, m).index(m))


def database_busy(exc: BaseException) -> PersonaeError | None:
    """503 with Retry-After for a database that is there but saturated: every pooled
    connection in use past the pool timeout, or SQLite's write lock held past its busy
    timeout. Anything else is not this (None)."""
    saturated = isinstance(exc, SATimeoutError) or (
        isinstance(exc, OperationalError) and "database is locked" in str(exc)
    )
    if not saturated:
        return None
    return ServiceUnavailable(
        "The database is saturated; try again shortly", headers={"Retry-After": "2"}
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    error = database_busy(exc)
    if error is None:
        return await _unexpected(request, exc)
    log.warning("database saturated on %s %s: %s", request.method, request.url.path, exc)
    return respond(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return respond(request, PersonaeError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PersonaeError, _personae_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SATimeoutError, _database_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
