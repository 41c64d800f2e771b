"""How the API writes a moment: one formatter for response bodies, error details, messages
and webhook events alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, e.g. ``2023-09-01T12:00:00.000Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


# A moment in a response body or an event: written by `format_timestamp` in JSON.
Timestamp = Annotated[
    datetime, PlainSerializer(format_timestamp, return_type=str, when_used="json")
]
