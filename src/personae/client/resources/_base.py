"""What every resource holds: its client, and the helpers that build its calls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from personae.client._client import AsyncPersonae, Personae

# An image to upload: its bytes, an open binary file, or a path.
FileInput = bytes | IO[bytes] | Path


class SyncResource:
    def __init__(self, client: Personae) -> None:
        self._client = client


class AsyncResource:
    def __init__(self, client: AsyncPersonae) -> None:
        self._client = client


def body_or_form(fields: Mapping[str, Any], image: FileInput | None) -> dict[str, Any]:
    """The `Call` arguments for a character's body: JSON, or a multipart form with the image.

    In the form, lists are JSON arrays (the API reads `tags` and `alternate_greetings` so),
    numbers are text, and a cleared value (None) is left out: clear one with JSON instead.
    """
    if image is None:
        return {"json": dict(fields)}
    data = {
        name: json.dumps(value) if isinstance(value, list) else str(value)
        for name, value in fields.items()
        if value is not None
    }
    if isinstance(image, Path):
        content: bytes | IO[bytes] = image.read_bytes()
    else:
        content = image
    return {"data": data, "files": {"image": ("image", content, "application/octet-stream")}}
