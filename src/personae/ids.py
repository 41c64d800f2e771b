"""Public identifiers: a type prefix and random hex, as the API documents show (`char_…`)."""

import secrets
from typing import Annotated

from pydantic import StringConstraints

from personae.text import LINE

MAX_ID = 40

# An id given in a request body: one line of text (no control characters: PostgreSQL cannot
# compare a string holding U+0000), 1 to MAX_ID characters.
IdRef = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID), LINE]


def new_id(prefix: str) -> str:
    """A new id such as ``user_1f0c…``: 96 random bits, so ids are unguessable."""
    return f"{prefix}_{secrets.token_hex(12)}"
