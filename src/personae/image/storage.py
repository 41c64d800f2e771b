"""Where image files live and the URL each is served at.

`Storage` is the interface; `LocalStorage` keeps files under the data dir and the app
serves them at `/files/{key}`. An S3-compatible store would implement the same three
methods and return its own (or a CDN's) URLs.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from abc import ABC, abstractmethod
from pathlib import Path

KEY_RE = re.compile(r"^[a-z]+/[A-Za-z0-9_-]{1,100}\.(png|jpg)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


def new_key(folder: str, stem: str, ext: str) -> str:
    """A fresh key per file; never reused, so the served files can be cached forever."""
    return f"{folder}/{stem}-{secrets.token_hex(8)}.{ext}"


class Storage(ABC):
    @abstractmethod
    async def save(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    def url(self, key: str) -> str: ...

    def url_for(self, key: str | None) -> str | None:
        """The URL of a file that may be absent (a character without an avatar)."""
        return self.url(key) if key else None


class LocalStorage(Storage):
    def __init__(self, root: Path, public_url: str) -> None:
        self.root = root
        self.public_url = public_url

    def path(self, key: str) -> Path | None:
        """The file of a key, or None for a key that is malformed or names nothing."""
        if not KEY_RE.match(key):
            return None
        path = self.root / key
        return path if path.is_file() else None

    async def save(self, key: str, data: bytes) -> None:
        if not KEY_RE.match(key):
            raise ValueError(f"invalid storage key {key!r}")
        await asyncio.to_thread(self._write, self.root / key, data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: a reader never sees half a file

    async def delete(self, key: str) -> None:
        if KEY_RE.match(key):
            await asyncio.to_thread((self.root / key).unlink, True)

    def url(self, key: str) -> str:
        return f"{self.public_url}/files/{key}"
