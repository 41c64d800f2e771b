"""Signed, expiring URLs for the files that are not public.

A public character's avatar is served to anyone at a plain URL and cached for a year.
Every other file (a private character's avatar, a generated image, an image posted in a
conversation) is served only at a URL that carries `expires` (epoch seconds) and
`signature`, base64url of HMAC-SHA256(secret, "KEY\\nEXPIRES"): the API hands it to those
who may see the file, and `GET /files/{key}` serves nobody else. An unsigned, tampered or
expired request gets what a missing file gets (404).

Secrets: `PERSONAE_FILE_SIGNING_KEYS`, comma-separated; the first signs, every one verifies,
so a new secret can be put first while the old one still honours the URLs already handed
out. Unset, a secret is generated on first start and kept in `DATA_DIR/file-signing.key`
(mode 0600), shared by every process that uses the data dir. docs/security.md explains
rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from personae.config import Settings

KEY_FILE = "file-signing.key"
MIN_SECRET_LENGTH = 32
_MAX_EXPIRES_DIGITS = 12  # far beyond any real expiry; bounds what int() is given


class UrlSigner:
    """Signs and checks `(key, expires)` pairs.

    Expiries fall on a grid of half the lifetime, so the URLs of one file rendered within
    that half share one URL (a browser's cache keeps working) and each lives between
    `ttl_seconds` and one and a half times that.
    """

    def __init__(self, secrets_: Sequence[bytes], ttl_seconds: int) -> None:
        if not secrets_:
            raise ValueError("at least one signing secret is needed")
        self._secrets = list(secrets_)
        self.ttl = ttl_seconds
        self._step = max(1, ttl_seconds // 2)

    def sign(self, key: str, now: float | None = None) -> tuple[int, str]:
        """(expires, signature) for `key`, signed with the first secret."""
        moment = int(time.time() if now is None else now)
        expires = ((moment + self.ttl) // self._step + 1) * self._step
        return expires, self._mac(self._secrets[0], key, expires)

    def verify(
        self, key: str, expires: str, signature: str, now: float | None = None
    ) -> int | None:
        """Seconds the signature is still good for, or None if it is not (malformed,
        signed by no secret we hold, or expired)."""
        if not expires.isdigit() or len(expires) > _MAX_EXPIRES_DIGITS or not signature:
            return None
        when = int(expires)
        remaining = when - int(time.time() if now is None else now)
        if remaining <= 0:
            return None
        presented = signature.encode("ascii", "replace")
        # Every secret is tried (no early exit), so timing says nothing about which matched.
        valid = False
        for secret in self._secrets:
            valid |= hmac.compare_digest(self._mac(secret, key, when).encode(), presented)
        return remaining if valid else None

    @staticmethod
    def _mac(secret: bytes, key: str, expires: int) -> str:
        digest = hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signing_secrets(settings: Settings) -> list[bytes]:
    """The configured secrets, or the one kept under the data dir (made on first use)."""
    if settings.file_signing_keys is not None:
        configured = settings.file_signing_keys.get_secret_value().split(",")
        return [s.strip().encode() for s in configured if s.strip()]
    return [_stored_secret(settings.data_dir / KEY_FILE)]


def _stored_secret(path: Path) -> bytes:
    """Read the secret at `path`, creating it first if missing. Several processes starting
    together agree on one: each writes a candidate and links it into place, and only the
    first link succeeds (the file appears whole or not at all)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process was first; use its secret
        finally:
            candidate.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds no usable signing secret (at least 32 characters)")
    return secret.encode()
