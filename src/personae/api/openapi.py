"""The OpenAPI document, made to say what the server does.

FastAPI documents a 422 with its own `HTTPValidationError` for every operation that takes
parameters; ours answer 400 in the dialect's error shape (`api/errors.py`), so `conform()`
drops the 422s and gives every error response without a body schema the dialect's one. It
also adds the statuses any operation can answer whatever its route says: 409 from
`IdempotencyMiddleware` (every POST), 413 from `BodyLimitMiddleware` (methods that carry a
body), 500 from `UnexpectedErrorMiddleware`, 503 when the database or the rate limiter's
store is saturated or down; and the text rule's `pattern` on the path and query parameters
that `reject_control_characters` refuses otherwise, and the `Idempotency-Key` header on
every POST. Bounds are never written here: they come
from the pydantic types of the request models, which enforce them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from personae.api.dialect import Dialect, dialect_of
from personae.api.query import reject_control_characters
from personae.idempotency.service import HEADER as IDEMPOTENCY_HEADER
from personae.idempotency.service import KEY_MAX_LENGTH
from personae.text import TextKind, pattern

# The error body each dialect answers with, by its component name (`dialect_of` decides,
# for the paths outside both dialects too).
ERROR_SCHEMAS = {
    Dialect.AGENTS: "AgentsError",
    Dialect.CHARACTERS: "CharactersError",
    Dialect.OPENAI: "OpenAIError",
}
ALL_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
BODY_METHODS = ("post", "put", "patch", "delete")
COMMON_RESPONSES = {
    "409": (
        "The Idempotency-Key went with another request, or its first request still runs",
        ("post",),
    ),
    "413": ("Request body over its cap", BODY_METHODS),
    "500": ("Internal error", ALL_METHODS),
    "503": ("The database or the rate limiter is saturated or down", ALL_METHODS),
}
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
# `IdempotencyMiddleware` reads it on every POST, whatever the route declares.
IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Retrying with the same key and body replays the first answer without "
    "running the request again (docs/api.md, Idempotency). Kept 24 hours.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_LENGTH,
        "pattern": "^[ -~]*$",  # printable ASCII, as idempotency/service.py checks
    },
}


def error_responses(model: type[BaseModel], descriptions: dict[int, str]) -> dict[int | str, Any]:
    """The `responses=` entry documenting a dialect's error body for each status."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model's JSON schema with its local `#/$defs/…` references replaced by
    the definitions themselves, for a schema placed by hand in an operation (where
    `$defs` do not resolve). The models it serves are not recursive."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                return resolve(target | {k: v for k, v in node.items() if k != "$ref"})
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def conform(
    document: dict[str, Any], line_checked: frozenset[tuple[str, str]] = frozenset()
) -> dict[str, Any]:
    """FastAPI's `document`, changed in place to document what the server answers.
    `line_checked`: the operations (path, method) whose path and query parameters
    `reject_control_characters` refuses unless they are one line of text: their string
    parameters get that rule's `pattern`."""
    line = pattern(TextKind.LINE)
    for path, operations in document.get("paths", {}).items():
        error = {"$ref": f"#/components/schemas/{ERROR_SCHEMAS[dialect_of(path)]}"}
        for method, operation in operations.items():
            if (path, method) in line_checked:
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") in ("path", "query"):
                        _add_pattern(parameter.get("schema", {}), line)
            if method == "post":
                operation.setdefault("parameters", []).append(copy.deepcopy(IDEMPOTENCY_KEY))
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, (description, methods) in COMMON_RESPONSES.items():
                if method in methods:
                    responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45" and not response.get("content"):
                    response["content"] = {"application/json": {"schema": error}}
    schemas = document.get("components", {}).get("schemas", {})
    for name in FASTAPI_VALIDATION:
        schemas.pop(name, None)
    _drop_null_defaults(document)
    return document


def _add_pattern(schema: dict[str, Any], line: str) -> None:
    """`line` as the pattern of a string schema (or of a union's string variants) that
    has none of its own."""
    if schema.get("type") == "string" and "enum" not in schema:
        schema.setdefault("pattern", line)
    for variant in schema.get("anyOf", []):
        _add_pattern(variant, line)


def _dependencies(dependant: Dependant) -> Iterator[Any]:
    pending = [dependant]
    while pending:
        current = pending.pop()
        yield current.call
        pending.extend(current.dependencies)


def line_checked_operations(app: FastAPI) -> frozenset[tuple[str, str]]:
    """(path, method) of every route that depends on `reject_control_characters`."""
    return frozenset(
        (str(route.path_format), method.lower())
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute)
        and reject_control_characters in _dependencies(route.dependant)
        for method in route.methods or ()
    )


def _nullable(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_nullable(v) for v in schema.get("anyOf", []) + schema.get("oneOf", []))


def _drop_null_defaults(node: Any) -> None:
    """`"default": null` on a property that cannot be null: a PATCH field's Python default
    (None: not given), which `NotNull` keeps out of the type (`character/fields.py`). A
    client cannot send it, so it is no default."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for prop in properties.values():
                if (
                    isinstance(prop, dict)
                    and prop.get("default", ...) is None
                    and not _nullable(prop)
                ):
                    del prop["default"]
        for value in node.values():
            _drop_null_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _drop_null_defaults(value)


def install_openapi(app: FastAPI) -> None:
    """Serve `conform()`'s document at /openapi.json (built once, on the first request)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = conform(generate(), line_checked_operations(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to override
