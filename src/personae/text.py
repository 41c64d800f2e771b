"""Which characters the API accepts in text, stated once for every field.

Three kinds of text, each a pydantic annotation (`TEXT`, `LINE`, `NAME`) that the field
types of both dialects carry, so that the rule is checked in one place and shown in the
OpenAPI document as the field's `pattern` (the same regular expression that is checked):

- **text** (descriptions, prompts, messages): no control characters but tab, line feed and
  carriage return. C0 controls, DEL and C1 controls render as nothing or as garbage, and
  PostgreSQL cannot store U+0000 at all (SQLite can: the two backends would disagree).
- **line** (titles, tags, ids, URLs): text on one line, so no tab or line break either
  (U+2028 and U+2029 included), and no bidirectional override or isolate (U+202A-U+202E,
  U+2066-U+2069), which reorder on screen whatever follows them (the "Trojan Source" trick,
  or `exe.txt` shown for `txt.exe`).
- **name** (a character's name, a tag): a line holding at least one visible character: not
  only white space, format characters (zero-width spaces and joiners, bidi marks) or other
  default-ignorable code points (variation selectors, Hangul fillers), all of which render
  as nothing.

Lone surrogates (U+D800-U+DFFF) are refused in every kind too: no database can store them
(they cannot be encoded in UTF-8) and JSON written by the standard cannot carry them, so the
documented patterns leave them out (Python's `json` module reads `"\\ud800"` all the same).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# Regular expression classes (the text between brackets), written with escapes that Python,
# ECMAScript (JSON Schema's dialect) and Rust (pydantic's) read alike.
CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
LINE_BREAKS = r"\t\n\r\u2028\u2029"
BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
SURROGATES = r"\ud800-\udfff"

# Code points that render as nothing but are neither white space nor format characters
# (Unicode's Default_Ignorable_Code_Point, DerivedCoreProperties.txt, less categories Cf,
# Cc and Z*, which are taken from `unicodedata`), and the blank Braille pattern.
_IGNORABLE = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors
    (0x2800, 0x2800),  # Braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# Format and space characters are found in planes 0, 1 and 14 only (the others hold
# ideographs, private use or nothing), which keeps the scan below short.
_SCANNED = (range(0x0000, 0x20000), range(0xE0000, 0xE1000))


class TextKind(StrEnum):
    TEXT = "text"
    LINE = "line"
    NAME = "name"


def _class_text(ranges: list[tuple[int, int]]) -> str:
    """A regex class body for code point ranges: `\\uXXXX` escapes in the Basic
    Multilingual Plane, the characters themselves beyond it (the three dialects disagree
    on how to escape those)."""

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


def _merged(codes: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for code in sorted(set(codes)):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


@cache
def invisible_class() -> str:
    """The regex class body of the characters that do not count as visible in a name."""
    codes = [
        code
        for block in _SCANNED
        for code in block
        if unicodedata.category(chr(code)) in _INVISIBLE_CATEGORIES
    ]
    codes += [code for a, b in _IGNORABLE for code in range(a, b + 1)]
    return _class_text(_merged(codes))


def _forbidden(kind: TextKind) -> str:
    if kind is TextKind.TEXT:
        return CONTROLS
    return CONTROLS + LINE_BREAKS + BIDI_CONTROLS


@cache
def pattern(kind: TextKind) -> str:
    """The JSON Schema `pattern` of a kind of text: exactly what `check` accepts, lone
    surrogates aside (see the module's docstring)."""
    allowed = f"[^{_forbidden(kind)}]*"
    if kind is not TextKind.NAME:
        return f"^{allowed}$"
    return f"^{allowed}[^{_forbidden(kind)}{invisible_class()}]{allowed}$"


@cache
def _refused(kind: TextKind) -> re.Pattern[str]:
    return re.compile(f"[{_forbidden(kind)}{SURROGATES}]")


@cache
def _visible() -> re.Pattern[str]:
    return re.compile(f"[^{CONTROLS}{LINE_BREAKS}{BIDI_CONTROLS}{SURROGATES}{invisible_class()}]")


def _what(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return "unpaired surrogates"
    if char in "\t\n\r\u2028\u2029":
        return "tabs or line breaks"
    if 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
        return "bidirectional overrides or isolates"
    return "control characters"


def check(value: str, kind: TextKind) -> str:
    """`value` if it is acceptable text of this kind; otherwise a pydantic error naming
    the rule, the character and where it is."""
    found = _refused(kind).search(value)
    if found is not None:
        raise PydanticCustomError(
            "text_characters",
            "must not contain {what} (U+{code} at position {position})",
            {"what": _what(found.group()), "code": f"{ord(found.group()):04X}",
             "position": found.start()},
        )  # fmt: skip
    if kind is TextKind.NAME and _visible().search(value) is None:
        raise PydanticCustomError(
            "text_invisible",
            "must contain a visible character, not only white space, zero-width or "
            "formatting characters",
        )
    return value


def refusal(value: str, kind: TextKind = TextKind.LINE) -> str | None:
    """Why `value` is not acceptable text of this kind, or None (for text checked outside
    pydantic: path and query parameters)."""
    try:
        check(value, kind)
    except PydanticCustomError as exc:
        return exc.message()
    return None


@dataclass(frozen=True)
class TextRule:
    """A pydantic annotation: the string must be text of `kind`. It is checked before
    any trimming (so a control character at an end is refused, not stripped), and the
    field's JSON Schema gets the kind's `pattern`."""

    kind: TextKind

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        json_schema["pattern"] = pattern(self.kind)
        return json_schema

    def _check(self, value: Any) -> Any:
        return check(value, self.kind) if isinstance(value, str) else value


TEXT = TextRule(TextKind.TEXT)
LINE = TextRule(TextKind.LINE)
NAME = TextRule(TextKind.NAME)
