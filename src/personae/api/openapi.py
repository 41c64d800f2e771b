"""OpenAPI helpers shared by the dialects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def error_responses(model: type[BaseModel], descriptions: dict[int, str]) -> dict[int | str, Any]:
    """The `responses=` entry documenting a dialect's error body for each status."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}
