"""Limits of chat inputs, shared by both dialects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from personae.engines.llm.base import Sampling
from personae.ids import IdRef
from personae.numbers import JsonIntegers
from personae.text import LINE, TEXT

MAX_MESSAGE = 10_000
MAX_TITLE = 200
MAX_SYSTEM_PROMPT = 10_000
MAX_COMPLETION_MESSAGES = 200

MessageText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_MESSAGE), TEXT
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TITLE), LINE]
SystemPrompt = Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT), TEXT]
# A cap on any answer; the model's context bounds it further (`max_context` in
# `GET /api/v1/models`): the prompt and the answer must fit in it together, else 400.
MAX_ANSWER_TOKENS = 4096
MaxTokens = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_ANSWER_TOKENS,
        description="Longest answer, in tokens. The prompt and the answer must fit in the "
        "model's context (`max_context` in `GET /api/v1/models`) together: 400 otherwise.",
    ),
]
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class TurnOptions:
    """A turn's generation options, once each dialect's request is read."""

    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)  # the request's overrides
    seed: int | None = None
    verbose: bool = False
    # The caller's own stop sequences (the OpenAI dialect's `stop`), besides the house's.
    stop: tuple[str, ...] = ()


class ChatOptions(Sampling, JsonIntegers):
    """What every generating request of either dialect may ask for: the sampling settings
    override the model's defaults (`GET /api/v1/models` lists them) for this turn only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)
    stream: bool = Field(default=False, description="Answer as Server-Sent Events.")
    verbose: bool = Field(default=False, description="Add `thought_process` to the answer.")
    max_tokens: MaxTokens | None = None
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="The same seed and input give the same answer."
    )

    def turn_options(self, default_max_tokens: int) -> TurnOptions:
        sampling = Sampling.model_validate(self.model_dump(include=set(Sampling.model_fields)))
        return TurnOptions(self.max_tokens or default_max_tokens, sampling, self.seed, self.verbose)


class RegenerateOptions(ChatOptions):
    """`POST …/messages/{id}/regenerate` in both dialects: a turn's options, and a model."""

    llm_id: IdRef | None = Field(default=None, description="Default: the conversation's.")
