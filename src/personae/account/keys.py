"""API key format: `prs_` + 8 public characters + 32 secret characters (base62).

The `prs_` marker makes a leaked key recognisable to secret scanners; the 12-character
prefix (`prs_` + 8) is stored in clear to find the key and to name it in the CLI; the
whole key is stored only as a SHA-256 digest. A salted slow hash (bcrypt, argon2) buys
nothing for 190 random bits and would cost milliseconds on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

KEY_MARKER = "prs_"
_ALPHABET = string.ascii_letters + string.digits
_BASE62 = frozenset(_ALPHABET)
_PUBLIC_LEN = 8
_SECRET_LEN = 32
PREFIX_LEN = len(KEY_MARKER) + _PUBLIC_LEN
KEY_LEN = PREFIX_LEN + _SECRET_LEN


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    prefix: str
    secret_hash: str


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> NewKey:
    plaintext = KEY_MARKER + _random(_PUBLIC_LEN) + _random(_SECRET_LEN)
    return NewKey(plaintext, plaintext[:PREFIX_LEN], hash_key(plaintext))


def split_prefix(plaintext: str) -> str | None:
    """The stored prefix of a presented key, or None if it cannot be one of ours (then it
    is never looked up: PostgreSQL cannot even compare a string holding U+0000)."""
    if len(plaintext) != KEY_LEN or not plaintext.startswith(KEY_MARKER):
        return None
    if not _BASE62.issuperset(plaintext[len(KEY_MARKER) :]):
        return None
    return plaintext[:PREFIX_LEN]


def matches(plaintext: str, secret_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored digest."""
    return hmac.compare_digest(hash_key(plaintext), secret_hash)
