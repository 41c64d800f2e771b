"""Integers in request bodies, read as JSON Schema reads them.

Request bodies are validated strictly (a JSON value of another type than the document's is
refused, never converted: `"age": "30"`, `"stream": 0`), but JSON Schema's `integer` is
any number without a fractional part, so `2.0` is one, and pydantic's strict `int` refuses
every float. A body model that has integer fields derives from `JsonIntegers`, which takes
its top-level integral floats as ints first. Nothing else changes: a strict `float` field
takes an int as before, and a strict `bool` or `str` field refuses one as it refused the
float.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


class JsonIntegers(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            key: int(value) if type(value) is float and value.is_integer() else value
            for key, value in data.items()
        }
