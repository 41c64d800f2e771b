"""Limits of chat inputs, shared by both dialects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

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


@dataclass(frozen=True)
class TurnOptions:
    """A turn's generation options, once each dialect's request is read."""

    max_tokens: int
    temperature: float = 0.7
    verbose: bool = False


class ChatOptions(BaseModel):
    """What every generating request of either dialect may ask for."""

    stream: bool = Field(default=False, description="Answer as Server-Sent Events.")
    verbose: bool = Field(default=False, description="Add `thought_process` to the answer.")
    max_tokens: MaxTokens | None = None
    temperature: Temperature = 0.7

    def turn_options(self, default_max_tokens: int) -> TurnOptions:
        return TurnOptions(self.max_tokens or default_max_tokens, self.temperature, self.verbose)
