"""Console passwords, hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
recommended profile). A hash made with older parameters is upgraded at the next sign-in."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from personae.errors import InvalidRequest

MIN_LENGTH = 10
MAX_LENGTH = 256
_hasher = PasswordHasher()
# Verified when the account does not exist (or has no password), so that a sign-in takes
# as long whether or not the username is known.
_DECOY = _hasher.hash("personae-decoy-password")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(
            f"password: at least {MIN_LENGTH} characters", details={"field": "password"}
        )
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(
            f"password: at most {MAX_LENGTH} characters", details={"field": "password"}
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DECOY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
