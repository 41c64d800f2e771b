"""Limits of chat inputs, shared by both dialects."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

MAX_MESSAGE = 10_000
MAX_TITLE = 200
MAX_SYSTEM_PROMPT = 10_000
MAX_COMPLETION_MESSAGES = 200

MessageText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_MESSAGE)
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TITLE)]
SystemPrompt = Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT)]
MaxTokens = Annotated[int, Field(ge=1, le=4096, description="Longest answer, in tokens.")]
Temperature = Annotated[float, Field(ge=0, le=2)]
