"""Public identifiers: a type prefix and random hex, as the API documents show (`char_…`)."""

import secrets


def new_id(prefix: str) -> str:
    """A new id such as ``user_1f0c…``: 96 random bits, so ids are unguessable."""
    return f"{prefix}_{secrets.token_hex(12)}"
