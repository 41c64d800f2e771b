"""Field types and limits of a character, shared by both dialects' schemas so that each
limit is stated once (docs/api.md lists them)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

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
MIN_AGE, MAX_AGE = 18, 10_000


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


def normalize_tags(tags: list[str]) -> list[str]:
    """Trimmed, lower-cased, de-duplicated (first occurrence wins), capped in count."""
    out: list[str] = []
    for raw in tags:
        tag = " ".join(raw.split()).lower()
        if not tag:
            raise ValueError("tags must not be empty")
        if len(tag) > MAX_TAG:
            raise ValueError(f"tag {tag[:40]!r} is longer than {MAX_TAG} characters")
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
    except json.JSONDecodeError as exc:
        raise ValueError(f"{field}: not a valid JSON array") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field}: the JSON array must hold strings")
    return value


def split_tags_text(text: str) -> list[str]:
    """A form field's tags: a JSON array, or comma-separated words."""
    text = text.strip()
    if text.startswith("["):
        return json_string_list("tags", text)
    return [t for t in text.split(",") if t.strip()]


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
Personality = Annotated[str, StringConstraints(max_length=MAX_PERSONALITY)]
Background = Annotated[str, StringConstraints(max_length=MAX_BACKGROUND)]
Appearance = Annotated[str, StringConstraints(max_length=MAX_APPEARANCE)]
Scenario = Annotated[
    str,
    StringConstraints(max_length=MAX_SCENARIO),
    Field(description="The situation every conversation starts in."),
]
Greeting = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_GREETING),
    Field(
        description="The character's first message, which starts every new conversation. "
        "`{{char}}` and `{{user}}` stand for the character's and the user's names."
    ),
]
AlternateGreetings = Annotated[
    list[
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_GREETING)
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
    Field(
        description="Sample exchanges that show how the character talks: lines starting "
        "`{{user}}:` and `{{char}}:`, exchanges separated by `<START>`."
    ),
]
Age = Annotated[int, Field(ge=MIN_AGE, le=MAX_AGE, description="18 or older.")]
Tags = Annotated[
    list[Annotated[str, StringConstraints(max_length=200)]],
    Field(max_length=100, description=f"At most {MAX_TAGS} after normalisation."),
    AfterValidator(normalize_tags),
]


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null (leave the field out to keep it)")
    return value


# For PATCH bodies: the field may be left out, but an explicit null is refused.
NotNull = BeforeValidator(_reject_null)
