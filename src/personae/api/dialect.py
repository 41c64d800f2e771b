"""Which dialect a request speaks, and its error body. Everything outside `/api/v1` is
rendered in the characters API's shape, the richer of the two."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from starlette.responses import JSONResponse

from personae.errors import PersonaeError

AGENTS_PREFIX = "/api/v1"
CHARACTERS_PREFIX = "/v1"


class Dialect(StrEnum):
    AGENTS = "agents"
    CHARACTERS = "characters"


def dialect_of(path: str) -> Dialect:
    if path == AGENTS_PREFIX or path.startswith(AGENTS_PREFIX + "/"):
        return Dialect.AGENTS
    return Dialect.CHARACTERS


def error_body(dialect: Dialect, error: PersonaeError) -> dict[str, Any]:
    if dialect is Dialect.AGENTS:
        return {"error": error.message}
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "status": error.status,
            "details": error.details,
        }
    }


def error_response(path: str, error: PersonaeError) -> JSONResponse:
    return JSONResponse(
        error_body(dialect_of(path), error), status_code=error.status, headers=error.headers
    )
