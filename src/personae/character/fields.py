"""Field types and limits of a character, shared by both dialects' schemas so that each
limit is stated once (docs/api.md lists them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from personae.text import LINE, NAME, TEXT

MAX_NAME = 100
MAX_DESCRIPTION = 1_000
MAX_PERSONALITY = 5_000
MAX_BACKGROUND = 10_000
MAX_APPEARANCE = 2_000
MAX_SCENARIO = 2_000
MAX_GREETING = 4_000
MAX_ALTERNATE_GREETINGS = 10
MAX_EXAMPLE_DIALOGUE = 8_000
MAX_TAGS = 20
MAX_TAG = 32
MAX_TAGS_GIVEN = 100  # before normalisation (duplicates and case variants fold together)
MIN_AGE, MAX_AGE = 18, 10_000
# The other Character Card fields (character/card.py maps a card onto them).
MAX_CHARACTER_SYSTEM_PROMPT = 8_000
MAX_POST_HISTORY = 4_000
MAX_CREATOR_NOTES = 4_000
MAX_CARD_LINE = 200  # the card's author and version


def normalize_tags(tags: list[str]) -> list[str]:
    """Trimmed, lower-cased, de-duplicated (first occurrence wins), capped in count."""
    out: list[str] = []
    for raw in tags:
        folded = " ".join(raw.split())
        if not folded:
            raise ValueError("tags must not be empty")
        if len(folded) > MAX_TAG:
            raise ValueError(f"tag {folded[:40]!r} is longer than {MAX_TAG} characters")
        # Letter by letter, and only where the lower case is one letter too ("İ" is two):
        # the stored tag is never longer than the tag given, which the document bounds.
        tag = "".join(c.lower() if len(c.lower()) == 1 else c for c in folded)
        if "," in tag:
            raise ValueError("tags must not contain commas")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return out


def json_string_list(field: str, text: str) -> list[str]:
    """A form field that holds a JSON array of strings."""
    try:
        value: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
        raise ValueError(f"{field}: not a valid JSON array") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field}: the JSON array must hold strings")
    return value


def split_tags_text(text: str) -> list[str]:
    """A form field's tags: a JSON array, or comma-separated words."""
    text = text.strip()
    if text.startswith("["):
        return json_string_list("tags", text)
    try:
        return split_comma_tags(text)
    except ValueError as exc:
        raise ValueError(f"tags: {exc}") from exc


def split_comma_tags(text: str) -> list[str]:
    """Comma-separated tags (a form field, the catalogue's filter). Blank text is no tags;
    otherwise every tag must hold something: `a,,b` or `,,,` is refused, not read as
    fewer tags."""
    if not text.strip():
        return []
    tags = text.split(",")
    if len(tags) > MAX_TAGS_GIVEN:
        raise ValueError(f"at most {MAX_TAGS_GIVEN} tags may be given, not {len(tags)}")
    if any(not tag.strip() for tag in tags):
        raise ValueError("an empty tag (two commas in a row, or one at an end)")
    return tags


# Which characters each kind of text may hold (control characters, one line, a visible
# character in a name): `personae/text.py`.
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME), NAME
]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION), TEXT]
Personality = Annotated[str, StringConstraints(max_length=MAX_PERSONALITY), TEXT]
Background = Annotated[str, StringConstraints(max_length=MAX_BACKGROUND), TEXT]
Appearance = Annotated[str, StringConstraints(max_length=MAX_APPEARANCE), TEXT]
Scenario = Annotated[
    str,
    StringConstraints(max_length=MAX_SCENARIO),
    TEXT,
    Field(description="The situation every conversation starts in."),
]
Greeting = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_GREETING),
    TEXT,
    Field(
        description="The character's first message, which starts every new conversation. "
        "`{{char}}` and `{{user}}` stand for the character's and the user's names."
    ),
]
AlternateGreetings = Annotated[
    list[
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_GREETING),
            TEXT,
        ]
    ],
    Field(
        max_length=MAX_ALTERNATE_GREETINGS,
        description="Other first messages, offered as alternatives of the greeting.",
    ),
]
ExampleDialogue = Annotated[
    str,
    StringConstraints(max_length=MAX_EXAMPLE_DIALOGUE),
    TEXT,
    Field(
        description="Sample exchanges that show how the character talks: lines starting "
        "`{{user}}:` and `{{char}}:`, exchanges separated by `<START>`."
    ),
]
Age = Annotated[int, Field(ge=MIN_AGE, le=MAX_AGE, description="18 or older.")]
CharacterSystemPrompt = Annotated[
    str,
    StringConstraints(max_length=MAX_CHARACTER_SYSTEM_PROMPT),
    TEXT,
    Field(
        description="The character's own system prompt (a Character Card's `system_prompt`), "
        "part of the system message of every conversation with it."
    ),
]
PostHistoryInstructions = Annotated[
    str,
    StringConstraints(max_length=MAX_POST_HISTORY),
    TEXT,
    Field(
        description="An instruction sent after the conversation's history, as a system "
        "message (a Character Card's `post_history_instructions`)."
    ),
]
CreatorNotes = Annotated[
    str,
    StringConstraints(max_length=MAX_CREATOR_NOTES),
    TEXT,
    Field(description="Notes for people using the character; never part of a prompt."),
]
CardCreator = Annotated[
    str,
    StringConstraints(max_length=MAX_CARD_LINE),
    LINE,
    Field(description="The card's author as the card names them (not the owning account)."),
]
CardVersion = Annotated[
    str,
    StringConstraints(max_length=MAX_CARD_LINE),
    LINE,
    Field(description="The card's own version (`character_version`)."),
]


@dataclass(frozen=True)
class _NoCommas:
    """A tag holds no comma (tags are comma-separated in forms and in the catalogue's
    filter). The JSON Schema says so in the text rule's `pattern`, whose character classes
    are all negated (`[^…]`, `personae/text.py`): the comma joins each of them."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        pattern = json_schema.get("pattern")
        json_schema["pattern"] = pattern.replace("[^", "[^,") if pattern else "^[^,]*$"
        return json_schema

    @staticmethod
    def _check(value: str) -> str:
        if "," in value:
            raise ValueError("tags must not contain commas")
        return value


# A tag as given: its length is checked as given (inner white space folds, so the stored
# tag is never longer), and the list holds at most MAX_TAGS of them, so the count after
# de-duplication never refuses what the document accepts.
Tag = Annotated[str, StringConstraints(max_length=MAX_TAG), NAME, _NoCommas()]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS,
        description="Trimmed, lower-cased and de-duplicated when stored.",
    ),
    AfterValidator(normalize_tags),
]


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null (leave the field out to keep it)")
    return value


@dataclass(frozen=True)
class _NotNull:
    """For PATCH bodies: the field may be left out (its Python type stays `X | None`, with
    None for "not given"), but an explicit null is refused, and the JSON Schema says so:
    `null` is taken out of the type (and out of the default, in `api/openapi.py`)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_reject_null, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        variants = json_schema.get("anyOf")
        if not isinstance(variants, list):
            return json_schema
        kept = [v for v in variants if v != {"type": "null"}]
        rest = {k: v for k, v in json_schema.items() if k != "anyOf"}
        return kept[0] | rest if len(kept) == 1 else {"anyOf": kept} | rest


NotNull = _NotNull()
