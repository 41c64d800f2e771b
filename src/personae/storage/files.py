"""Where image files live and the URL each is served at.

`Storage` is the interface; `LocalStorage` keeps files under the data dir and the app
serves them at `/files/{key}`, for one machine (or several sharing the volume).
`S3Storage` (`storage/s3.py`) keeps them in an S3-compatible bucket and returns the store's
(or a CDN's) URLs, presigned for the files that are not public. `AppState` picks one by
`PERSONAE_STORAGE_BACKEND`.

Every file URL the API renders goes through here (`url_for`, `avatar_url`): a public
character's avatar gets a plain URL, every other file a signed, expiring one
(`storage/signing.py`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from personae.storage.signing import UrlSigner

if TYPE_CHECKING:
    from personae.models import Character

KEY_RE = re.compile(r"^[a-z]+/[A-Za-z0-9_-]{1,100}\.(png|jpg)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


def new_key(folder: str, stem: str, ext: str) -> str:
    """A fresh key per file; never reused, so the served files can be cached forever."""
    return f"{folder}/{stem}-{secrets.token_hex(8)}.{ext}"


def owner_of(key: str) -> str | None:
    """The id a key was made for (`new_key`'s stem): a character's or an image job's."""
    if not KEY_RE.match(key):
        return None
    stem = key.split("/", 1)[1].rsplit(".", 1)[0]
    owner, dash, _ = stem.rpartition("-")
    return owner if dash and owner else None


class Storage(ABC):
    @abstractmethod
    async def save(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def read(self, key: str) -> bytes | None:
        """A file's bytes (a character's avatar, to export it in a card); None if absent."""

    @abstractmethod
    def url(self, key: str, *, public: bool = False) -> str:
        """A public file's plain URL, or else a signed one that expires."""

    def url_for(self, key: str | None, *, public: bool = False) -> str | None:
        """The URL of a file that may be absent (a character without an avatar). Signed
        unless `public`: only a public character's avatar is (`avatar_url`)."""
        return self.url(key, public=public) if key else None

    def avatar_url(self, character: Character, viewer_id: str | None = None) -> str | None:
        """A character's avatar: plain (and cached by anyone) while the character is
        public, signed while it is private. With `viewer_id` (an account that may no longer
        see the character: one whose conversation names it), a private character's avatar
        is shown to its owner only."""
        public = character.visibility == "public"
        if not public and viewer_id is not None and viewer_id != character.owner_id:
            return None
        return self.url_for(character.image_key, public=public)

    async def close(self) -> None:  # noqa: B027  # optional: most backends hold nothing
        """Let go of what the backend holds (a client's connections)."""


class LocalStorage(Storage):
    def __init__(self, root: Path, public_url: str, signer: UrlSigner) -> None:
        self.root = root
        self.public_url = public_url
        self.signer = signer

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

    async def read(self, key: str) -> bytes | None:
        path = self.path(key)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # deleted since `path` looked
            return None

    def url(self, key: str, *, public: bool = False) -> str:
        plain = f"{self.public_url}/files/{key}"
        if public:
            return plain
        expires, signature = self.signer.sign(key)
        return f"{plain}?expires={expires}&signature={signature}"
