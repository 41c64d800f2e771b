"""A character's lorebook (a Character Card's `character_book`): its shape, its caps, and
the keys its entries fire on.

A book is kept as given (the JSON document a card or `PUT /v1/characters/{id}/lorebook`
sent), so that an export gives it back field for field; `Lorebook` validates it and is what
a turn reads (`conversation/lore.py`). Unknown fields are allowed and kept, as the card
specifications ask. Regular-expression keys (V3's `use_regex`) are refused when they could
backtrack without end (see `regex_refusal`): they run on other accounts' messages.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from personae.errors import InvalidRequest
from personae.text import LINE, TEXT

MAX_ENTRIES = 256
MAX_ENTRY_CONTENT = 16_000
MAX_KEYS = 64  # per entry, and as many secondary keys
MAX_KEY = 200
MAX_REGEX_KEYS = 64  # per book
MAX_BOOK_TEXT = 4_000  # its name and description
MAX_BOOK_BYTES = 1_000_000  # the whole book as JSON
MAX_SCAN_DEPTH = 100
MAX_TOKEN_BUDGET = 32_000
MAX_DEPTH = 32  # of nested JSON in extensions

# The standard library's own parser of regular expressions (what `re` compiles), which
# typeshed does not describe.
sre_parse: Any = importlib.import_module("re._parser")

Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY), LINE]
Keys = Annotated[list[Key], Field(max_length=MAX_KEYS)]
BookText = Annotated[str, StringConstraints(max_length=MAX_BOOK_TEXT), TEXT]
Number = int | float
# SillyTavern writes an entry's selective logic as a number in its extensions.
SELECTIVE_LOGIC = ("and_any", "not_all", "not_any", "and_all")
SelectiveLogic = Literal["and_any", "not_all", "not_any", "and_all"]


class LoreEntry(BaseModel):
    """One entry: the V2 fields and V3's `use_regex`; anything else is kept as given."""

    model_config = ConfigDict(extra="allow", strict=True)
    keys: Keys
    content: Annotated[str, StringConstraints(max_length=MAX_ENTRY_CONTENT), TEXT]
    extensions: dict[str, Any] | None = None
    enabled: bool = True
    insertion_order: Number = 0
    case_sensitive: bool | None = None
    use_regex: bool | None = None
    constant: bool | None = None
    name: Annotated[str, StringConstraints(max_length=MAX_KEY), TEXT] | None = None
    priority: Number | None = None
    id: int | Annotated[str, StringConstraints(max_length=MAX_KEY), LINE] | None = None
    comment: BookText | None = None
    selective: bool | None = None
    secondary_keys: Keys | None = None
    selective_logic: SelectiveLogic | None = Field(
        default=None,
        description="With `selective`: how the secondary keys decide (default `and_any`: "
        "one of them must appear too). SillyTavern's `extensions.selectiveLogic` (0-3) "
        "is read when this is absent.",
    )
    position: Literal["before_char", "after_char"] | None = None

    @property
    def logic(self) -> SelectiveLogic:
        if self.selective_logic is not None:
            return self.selective_logic
        number = (self.extensions or {}).get("selectiveLogic")
        if isinstance(number, int) and not isinstance(number, bool) and 0 <= number < 4:
            return SELECTIVE_LOGIC[number]  # type: ignore[return-value]  # one of the four
        return "and_any"

    @property
    def label(self) -> str:
        """How `verbose` names the entry: its name or comment, else its id."""
        return self.name or self.comment or (str(self.id) if self.id is not None else "")


class Lorebook(BaseModel):
    """A character book. `scan_depth` and `token_budget` override the server's defaults
    (`PERSONAE_LOREBOOK_SCAN_DEPTH`, `PERSONAE_LOREBOOK_TOKEN_BUDGET`) for this book;
    `recursive_scanning` lets entries fire on other entries' content."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: BookText | None = None
    description: BookText | None = None
    scan_depth: Annotated[int, Field(ge=0, le=MAX_SCAN_DEPTH)] | None = None
    token_budget: Annotated[int, Field(ge=0, le=MAX_TOKEN_BUDGET)] | None = None
    recursive_scanning: bool | None = None
    extensions: dict[str, Any] | None = None
    entries: Annotated[list[LoreEntry], Field(max_length=MAX_ENTRIES)]


def validate_book(book: Any, where: str = "lorebook") -> Lorebook:
    """The book checked against its caps; a 400 naming the first faults otherwise. Every
    regular-expression key must compile and be safe to run (`regex_refusal`)."""
    if not isinstance(book, dict):
        raise InvalidRequest(f"{where}: must be a JSON object", details={"field": where})
    check_json_size(book, where, MAX_BOOK_BYTES)
    try:
        parsed = Lorebook.model_validate(book)
    except ValidationError as exc:
        raise fields_error(exc, where) from exc
    regex_keys = 0
    for index, entry in enumerate(parsed.entries):
        if not entry.use_regex:
            continue
        for key in [*entry.keys, *(entry.secondary_keys or [])]:
            regex_keys += 1
            why = regex_refusal(key)
            if why is not None:
                field = f"{where}.entries.{index}.keys"
                raise InvalidRequest(
                    f"{field}: the regular expression {key!r} {why}", details={"field": field}
                )
    if regex_keys > MAX_REGEX_KEYS:
        raise InvalidRequest(
            f"{where}: at most {MAX_REGEX_KEYS} regular-expression keys in a book, "
            f"not {regex_keys}",
            details={"field": where, "max": MAX_REGEX_KEYS},
        )
    return parsed


def fields_error(exc: ValidationError, where: str) -> InvalidRequest:
    """A 400 naming each bad field of a document (a card, a book) by its path in it."""
    fields = []
    for err in exc.errors()[:10]:
        path = ".".join(str(part) for part in (where, *err["loc"]))
        fields.append({"field": path, "message": err["msg"]})
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return InvalidRequest(message, details={"fields": fields})


def check_json_size(value: Any, where: str, most: int) -> None:
    """A 400 when `value` as JSON is over `most` bytes, nested deeper than MAX_DEPTH, or
    holds a string no database stores (U+0000, an unpaired surrogate: JSON escapes can
    write both), wherever it is, kept-verbatim objects included."""
    if _depth(value) > MAX_DEPTH:
        raise InvalidRequest(
            f"{where}: nested deeper than {MAX_DEPTH} levels", details={"field": where}
        )
    text = json.dumps(value, ensure_ascii=False)
    found = _SURROGATE.search(text)
    if found is not None or _NUL.search(text):
        code = f"{ord(found.group()):04X}" if found else "0000"
        raise InvalidRequest(
            f"{where}: holds U+{code}, which no text may hold", details={"field": where}
        )
    size = len(text.encode())
    if size > most:
        raise InvalidRequest(
            f"{where}: {size} bytes as JSON, over the limit of {most}",
            details={"field": where, "limit_bytes": most},
        )


_SURROGATE = re.compile("[\ud800-\udfff]")
# U+0000 as `json.dumps` writes it: `\u0000` after an even number of backslashes.
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _depth(value: Any, level: int = 0) -> int:
    # Stops descending once past the limit, so a hostile document costs no more than
    # MAX_DEPTH levels of recursion.
    if level > MAX_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


# regular-expression keys
_SLASHED = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "u": 0, "g": 0, "y": 0}
_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT}


def _split_regex(key: str) -> tuple[str, int]:
    """A key as SillyTavern writes one (`/pattern/flags`) or a bare pattern."""
    found = _SLASHED.match(key)
    if found is None:
        return key, 0
    flags = 0
    for letter in found.group(2):
        if letter not in _FLAGS:
            raise ValueError(f"has an unknown flag {letter!r}")
        flags |= _FLAGS[letter]
    return found.group(1), flags


def regex_refusal(key: str) -> str | None:
    """Why a regular-expression key is refused, or None. It must compile, refer to no
    group it matched (backreferences), and repeat at most one thing more than once, not an
    alternation: so it cannot backtrack exponentially (`(a+)+`, `(a|aa)*`) nor
    polynomially in many nested ways on a long message."""
    try:
        pattern, _flags = _split_regex(key)
        parsed = sre_parse.parse(pattern)
        re.compile(pattern)
    except (re.error, ValueError, OverflowError, RecursionError) as exc:
        return f"is not valid ({exc})"
    repeats = 0

    def walk(items: Any, in_repeat: bool) -> str | None:
        nonlocal repeats
        for op, arg in items:
            if op in (sre_parse.GROUPREF, sre_parse.GROUPREF_EXISTS):
                return "refers back to a group (backreferences are not allowed)"
            if op in _REPEATS:
                _low, high, sub = arg
                if high > 1:
                    repeats += 1
                    if repeats > 1:
                        return "repeats more than one thing (at most one *, + or {m,n})"
                why = walk(sub, in_repeat or high > 1)
                if why:
                    return why
            elif op is sre_parse.BRANCH:
                if in_repeat:
                    return "repeats an alternation"
                for branch in arg[1]:
                    if why := walk(branch, in_repeat):
                        return why
            elif op is sre_parse.SUBPATTERN:
                if why := walk(arg[-1], in_repeat):
                    return why
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT, sre_parse.ATOMIC_GROUP) and (
                why := walk(arg[-1] if isinstance(arg, tuple) else arg, in_repeat)
            ):
                return why
        return None

    return walk(parsed, False)


@lru_cache(maxsize=4096)
def key_pattern(key: str, case_sensitive: bool, use_regex: bool) -> re.Pattern[str]:
    """What a key matches. A plain key matches as a whole word (`wood` not in
    `woodland`) where it starts or ends with a letter or digit; a regex key as written."""
    flags = 0 if case_sensitive else re.IGNORECASE
    if use_regex:
        pattern, more = _split_regex(key)
        return re.compile(pattern, flags | more)
    body = re.escape(key)
    if re.match(r"\w", key):
        body = r"(?<!\w)" + body
    if re.search(r"\w$", key):
        body += r"(?!\w)"
    return re.compile(body, flags)
