"""Keyset cursors of the catalogue: `?cursor=` names the last row a page showed, and the
next page starts right after it, at the cost of one page whatever the depth (an offset
costs every row it skips, and moves when rows are added before it).

A cursor is base64url JSON: the sort and a digest of the tag filter it was made for, and
the last row's sort key, its id last. It is opaque to clients but not secret, and it is
not signed: it grants nothing (it names a place in a public list), and every value is
checked for its type and range before it reaches SQL. It is bound to its list, so that a
cursor sent with another sort or filter is refused rather than read as a place in a list
it was not made for. Anything else is refused too: 400, as any other bad parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from personae.errors import InvalidRequest
from personae.ids import MAX_ID

# The longest cursor the catalogue makes is about 150 characters; this leaves room.
MAX_CURSOR = 512
# The sort keys are 32-bit counters (PostgreSQL compares an out-of-range number by failing).
INT_RANGE = (-(2**31), 2**31 - 1)
ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID}}}")
BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

SortKey = tuple[Any, ...]


def encode_cursor(sort: str, tags: Sequence[str], key: SortKey) -> str:
    """The cursor of the row whose sort key is `key`, in the list of `sort` and `tags`."""
    values = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in key]
    payload = json.dumps({"s": sort, "f": _filter_digest(tags), "k": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def decode_cursor(text: str, sort: str, tags: Sequence[str], types: Sequence[type]) -> SortKey:
    """The sort key a cursor holds, each value of the type `types` names; 400 for anything
    that `encode_cursor` did not make for this list."""
    payload = _payload(text)
    if payload.get("s") != sort or payload.get("f") != _filter_digest(tags):
        raise bad_cursor("made for another sort or tag filter")
    values = payload.get("k")
    if not isinstance(values, list) or len(values) != len(types):
        raise bad_cursor("not a cursor of this list")
    return tuple(_value(v, t) for v, t in zip(values, types, strict=True))


def _payload(text: str) -> dict[str, Any]:
    if len(text) > MAX_CURSOR or not BASE64URL.fullmatch(text):
        raise bad_cursor("not a cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise bad_cursor("not a cursor") from exc
    if not isinstance(payload, dict) or set(payload) != {"s", "f", "k"}:
        raise bad_cursor("not a cursor")
    return payload


def _value(value: Any, kind: type) -> Any:
    if kind is int and type(value) is int and INT_RANGE[0] <= value <= INT_RANGE[1]:
        return value
    if kind is str and isinstance(value, str) and ID.fullmatch(value):
        return value
    if kind is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
        except (ValueError, OverflowError):  # not a time; a time past year 1 or 9999 in UTC
            pass
    raise bad_cursor("not a cursor of this list")


def _filter_digest(tags: Sequence[str]) -> str:
    """A short digest of a tag filter (tags cannot hold a comma; their order is no part
    of the filter)."""
    digest = hashlib.sha256(",".join(sorted(tags)).encode()).digest()[:8]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def bad_cursor(reason: str) -> InvalidRequest:
    """400 naming the `cursor` query parameter, as a refused parameter is named."""
    return InvalidRequest(
        f"cursor: {reason}",
        details={"fields": [{"field": "cursor", "in": "query", "message": reason}]},
    )
