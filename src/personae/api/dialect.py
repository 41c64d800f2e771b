"""Which dialect a request speaks, and its error body. Everything outside `/api/v1` and
`/openai/v1` is rendered in the characters API's shape, the richer of the two."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from starlette.responses import JSONResponse

from personae.errors import PersonaeError

AGENTS_PREFIX = "/api/v1"
CHARACTERS_PREFIX = "/v1"
OPENAI_PREFIX = "/openai/v1"


class Dialect(StrEnum):
    AGENTS = "agents"
    CHARACTERS = "characters"
    OPENAI = "openai"


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def dialect_of(path: str) -> Dialect:
    if under(path, AGENTS_PREFIX):
        return Dialect.AGENTS
    if under(path, OPENAI_PREFIX):
        return Dialect.OPENAI
    return Dialect.CHARACTERS


# The OpenAI error `type` by status (docs/api.md, "The OpenAI-compatible endpoint"); any
# other 4xx is an `invalid_request_error`, any 5xx a `server_error`.
OPENAI_ERROR_TYPES = {
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
# Where `details` names the request's part at fault, for OpenAI's `param`.
_PARAM_KEYS = ("field", "parameter", "header")


def openai_error_type(error: PersonaeError) -> str:
    if error.details.get("limit") == "monthly_chat_requests":
        return "insufficient_quota"  # OpenAI's 429 for a spent quota, as for a balance
    if error.status >= 500:
        return "server_error"
    return OPENAI_ERROR_TYPES.get(error.status, "invalid_request_error")


def openai_param(details: dict[str, Any]) -> str | None:
    for key in _PARAM_KEYS:
        if isinstance(details.get(key), str):
            return str(details[key])
    fields = details.get("fields")
    if isinstance(fields, list) and fields and isinstance(fields[0], dict):
        return str(fields[0].get("field")) if fields[0].get("field") else None
    return None


def error_body(dialect: Dialect, error: PersonaeError) -> dict[str, Any]:
    if dialect is Dialect.AGENTS:
        return {"error": error.message}
    if dialect is Dialect.OPENAI:
        return {
            "error": {
                "message": error.message,
                "type": openai_error_type(error),
                "param": openai_param(error.details),
                "code": error.code,
            }
        }
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
