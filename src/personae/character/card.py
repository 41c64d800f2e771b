"""Character Cards (V1, V2 `chara_card_v2`, V3 `chara_card_v3`) read into a character's
columns, and written back from them.

A card's fields map onto columns (`FIELDS`); its `extensions` object is kept verbatim in
`card_extensions`, and its lorebook (`character_book`) in `character_lorebooks`. Whatever
else it holds, `card_extras` keeps as given: fields no column takes (V3's `nickname`,
`source`, `group_only_greetings`, dates, assets; anything unknown), top-level keys beside
`data` (SillyTavern's `chat`, `create_date`, ...), the spec version, and the card's own
value of a field wherever the column stores it otherwise (a name with spaces around it,
tags that the catalogue folds, a null). An export writes the card's own value back while
the column still holds what that value became, and the column's value once someone
changed it: importing a card and exporting it gives back every field it had.

Imported text keeps the card's length up to MAX_CARD_TEXT (real cards write descriptions
of thousands of characters), beyond the limits of `POST /v1/characters`, and is never
trimmed: a field over it is a 400 that names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from personae.character.fields import MAX_TAGS, Name, normalize_tags
from personae.character.lorebook import check_json_size, fields_error, validate_book
from personae.errors import InvalidRequest
from personae.models import Character
from personae.text import TEXT

SPEC_V2, SPEC_V3 = "chara_card_v2", "chara_card_v3"
SPECS = {"v2": (SPEC_V2, "2.0"), "v3": (SPEC_V3, "3.0")}
Spec = Literal["v2", "v3"]
MAX_CARD_BYTES = 2_000_000  # the card as JSON, lorebook and extensions included
MAX_CARD_TEXT = 64_000  # each text field
MAX_CARD_LINE = 1_000  # the creator, the version
MAX_CARD_GREETINGS = 100
MAX_CARD_TAGS = 100

CardText = Annotated[str, StringConstraints(max_length=MAX_CARD_TEXT), TEXT]
CardLine = Annotated[str, StringConstraints(max_length=MAX_CARD_LINE), TEXT]
# Card field -> column, for the fields that are text in both.
TEXTS = {
    "description": "description",
    "personality": "personality",
    "scenario": "scenario",
    "first_mes": "greeting",
    "mes_example": "example_dialogue",
    "system_prompt": "system_prompt",
    "post_history_instructions": "post_history_instructions",
    "creator_notes": "creator_notes",
    "creator": "card_creator",
    "character_version": "card_version",
}
# Every card field that a column (or the lorebook) holds.
MAPPED = ("name", *TEXTS, "alternate_greetings", "tags", "extensions", "character_book")
# A V1 card's fields, which V2 writers repeat at the top of theirs.
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")


class CardData(BaseModel):
    """The mapped fields of a card's `data` (a V1 card's top level), as they may be
    written: absent or null is empty. Other fields are allowed and kept as given."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: Name
    description: CardText | None = None
    personality: CardText | None = None
    scenario: CardText | None = None
    first_mes: CardText | None = None
    mes_example: CardText | None = None
    system_prompt: CardText | None = None
    post_history_instructions: CardText | None = None
    creator_notes: CardText | None = None
    creator: CardLine | None = None
    character_version: CardLine | None = None
    alternate_greetings: Annotated[list[CardText], Field(max_length=MAX_CARD_GREETINGS)] | None = (
        None
    )
    tags: Annotated[list[CardLine], Field(max_length=MAX_CARD_TAGS)] | None = None
    extensions: dict[str, Any] | None = None
    character_book: dict[str, Any] | None = None


def catalogue_tags(tags: list[str]) -> list[str]:
    """The catalogue's tags of a card's tags: those that make a tag (one line, no comma,
    32 characters), normalised, the first MAX_TAGS of them. The card's list itself is kept
    for export."""
    kept: list[str] = []
    for tag in tags:
        try:
            kept = normalize_tags([*kept, tag])
        except ValueError:
            continue
        if len(kept) == MAX_TAGS:
            break
    return kept


# How each mapped field is stored: the card's value -> the column's.
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


STORED: dict[str, Callable[[Any], Any]] = {
    "name": lambda v: v.strip() if isinstance(v, str) else v,
    **dict.fromkeys(TEXTS, _text),
    "alternate_greetings": lambda v: list(v) if isinstance(v, list) else [],
    "tags": lambda v: catalogue_tags(v) if isinstance(v, list) else [],
    "extensions": lambda v: v if isinstance(v, dict) else {},
}
COLUMNS = {
    "name": "name",
    **TEXTS,
    "alternate_greetings": "alternate_greetings",
    "tags": "tags",
    "extensions": "card_extensions",
}


@dataclass(frozen=True)
class ImportedCard:
    """A card read: the character's columns (CharacterChanges' keys) and its lorebook."""

    changes: dict[str, Any]
    book: dict[str, Any] | None


def parse_card(card: Any, where: str = "card") -> ImportedCard:
    """A card's JSON (already decoded) checked and mapped; a 400 naming the field that is
    wrong otherwise."""
    if not isinstance(card, dict):
        raise InvalidRequest(f"{where}: must be a JSON object", details={"field": where})
    check_json_size(card, where, MAX_CARD_BYTES)
    spec = card.get("spec")
    if spec in (SPEC_V2, SPEC_V3):
        data = card.get("data")
        if not isinstance(data, dict):
            field = f"{where}.data"
            raise InvalidRequest(
                f"{field}: a {spec} card holds its fields in a `data` object",
                details={"field": field},
            )
        top = {k: v for k, v in card.items() if k not in ("spec", "spec_version", "data")}
        mirrored = [k for k in V1_FIELDS if k in top]  # rewritten from `data` on export
        top = {k: v for k, v in top.items() if k not in V1_FIELDS}
        data_where = f"{where}.data"
    elif spec is None and "data" not in card:  # V1: the fields at the top level
        data, top, mirrored, data_where = card, {}, [], where
    else:
        raise InvalidRequest(
            f"{where}.spec: {spec!r} is not a card specification this server reads "
            f"({SPEC_V2!r}, {SPEC_V3!r}, or none for a V1 card)",
            details={"field": f"{where}.spec"},
        )
    try:
        CardData.model_validate(data)
    except ValidationError as exc:
        raise fields_error(exc, data_where) from exc
    book = data.get("character_book")
    if book is not None:
        validate_book(book, f"{data_where}.character_book")
    changes: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    for field, column in COLUMNS.items():
        raw = data.get(field)
        stored = STORED[field](raw)
        changes[column] = stored
        if field in data and raw != stored:
            originals[field] = raw
    if "character_book" in data and book is None:
        originals["character_book"] = None
    extras: dict[str, Any] = {
        "data": {k: v for k, v in data.items() if k not in MAPPED},
        "top": top,
        "originals": originals,
    }
    if spec is not None:
        extras["spec"] = spec
        extras["mirrored"] = mirrored
        if "spec_version" in card:
            extras["spec_version"] = card["spec_version"]
    else:
        extras["data"] = {}
        extras["top"] = {k: v for k, v in data.items() if k not in MAPPED}
    changes["card_extras"] = extras
    return ImportedCard(changes, book)


def build_card(character: Character, book: dict[str, Any] | None, spec: Spec) -> dict[str, Any]:
    """The character as a card of `spec`: what it was imported from where nothing changed
    since, the columns' values where something did."""
    extras = character.card_extras or {}
    originals: dict[str, Any] = extras.get("originals", {})
    data: dict[str, Any] = {}
    for field, column in COLUMNS.items():
        value = getattr(character, column)
        if field in originals and STORED[field](originals[field]) == value:
            value = originals[field]
        data[field] = value
    if book is not None:
        data["character_book"] = book
    elif "character_book" in originals:
        data["character_book"] = None
    for key, value in extras.get("data", {}).items():
        data.setdefault(key, value)
    name, version = SPECS[spec]
    if spec == "v3":
        data.setdefault("group_only_greetings", [])
    if extras.get("spec") == name and "spec_version" in extras:
        version = extras["spec_version"]
    card: dict[str, Any] = {"spec": name, "spec_version": version, "data": data}
    # V1 readers read the top level, so V2 writers repeat the V1 fields there: as the
    # imported card did, else (a character made here, or a V1 card) in V2 only.
    mirrored = extras.get("mirrored", list(V1_FIELDS) if spec == "v2" else [])
    card |= {field: data[field] for field in mirrored}
    for key, value in extras.get("top", {}).items():
        card.setdefault(key, value)
    return card


def card_json(card: dict[str, Any]) -> bytes:
    return json.dumps(card, ensure_ascii=False).encode()


def decode_json(raw: bytes, where: str) -> Any:
    """A JSON document sent by a client (a card, a lorebook), or a 400 saying what is
    wrong with it."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})", details={"field": where}
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            details={"field": where},
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest(f"{where}: JSON nested too deep", details={"field": where}) from exc
