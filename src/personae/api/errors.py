"""Exception handlers: every error leaves in the dialect's shape, never with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

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
        fields.append({"field": name, "in": where, "message": err.get("msg", "invalid")})
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "Invalid request"
    return InvalidRequest(message, details={"fields": fields})


async def _personae_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PersonaeError)
    return error_response(request.url.path, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(request.url.path, validation_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    kind = _BY_STATUS.get(exc.status_code)
    if exc.status_code == 404:
        error: PersonaeError = NotFound(f"No such endpoint: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"Method {request.method} not allowed on {request.url.path}")
    elif kind is not None:
        error = kind(str(exc.detail))
    else:
        error = PersonaeError(str(exc.detail))
        error.status = exc.status_code
    error.headers.update(exc.headers or {})
    return error_response(request.url.path, error)


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
    return error_response(request.url.path, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request.url.path, PersonaeError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PersonaeError, _personae_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SATimeoutError, _database_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
