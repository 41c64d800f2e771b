"""Reading a character from a JSON body or a multipart form (with an optional `image`)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from personae.api.errors import invalid_request
from personae.character.fields import json_string_list, split_tags_text
from personae.errors import InvalidRequest, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
MAX_FORM_FIELDS = 20


def _validate(model: type[M], data: Any, *, json: bool) -> M:
    try:
        if json:
            # Strict: a JSON value of another type than the document's is refused, not
            # converted (`"age": "30"`, `"stream": 0`); form fields are text, read laxly.
            return model.model_validate_json(data, strict=True)
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(
            [err | {"loc": ("body", *err["loc"])} for err in exc.errors()]
        ) from exc


async def read_character_body(request: Request, model: type[M]) -> tuple[M, bytes | None]:
    """The validated fields and the uploaded image's bytes (None without one)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", ""):
        return _validate(model, await request.body() or b"{}", json=True), None
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "Content-Type must be application/json or multipart/form-data",
            details={"content_type": content_type},
        )
    form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    data: dict[str, Any] = {}
    image: bytes | None = None
    for key, value in form.multi_items():
        if key in data or (key == "image" and image is not None):
            raise InvalidRequest(f"{key}: given more than once")
        if key == "image":
            if not isinstance(value, UploadFile):
                raise InvalidRequest("image: must be a file")
            image = await value.read()
        elif isinstance(value, UploadFile):
            raise InvalidRequest(f"{key}: a file was sent where text was expected")
        elif key in ("tags", "alternate_greetings"):
            # Tags may be comma-separated; greetings hold commas, so only a JSON array.
            try:
                data[key] = (
                    split_tags_text(value)
                    if key == "tags"
                    else json_string_list(key, value.strip() or "[]")
                )
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
        else:
            data[key] = value
    return _validate(model, data, json=False), image
