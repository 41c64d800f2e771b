"""The one interface every language-model engine implements.

An engine turns chat messages into a stream of text pieces ending in a `Finish` with the
token usage. Vendor errors are mapped, inside each engine, to `EngineFailed`,
`EngineUnavailable` or `EngineTimeout` from `personae.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class Sampling(BaseModel):
    """How the next token is drawn. Each registered model holds its defaults (its engine
    settings' `sampling`), a request may override any of them, and what neither sets is
    left to the engine. The bounds are stated once, here: both dialects use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: Annotated[float | None, Field(ge=0, le=2, description="0: greedy.")] = None
    top_p: Annotated[
        float | None,
        Field(
            gt=0,
            le=1,
            description="Nucleus: the smallest set of tokens whose probabilities add up to top_p.",
        ),
    ] = None
    min_p: Annotated[
        float | None,
        Field(ge=0, le=1, description="Drop tokens less likely than min_p times the best."),
    ] = None
    top_k: Annotated[
        int | None, Field(ge=0, le=1000, description="Only the k likeliest tokens; 0: all.")
    ] = None
    repeat_penalty: Annotated[
        float | None,
        Field(ge=0.5, le=2, description="Above 1, tokens of the last 64 are made less likely."),
    ] = None
    frequency_penalty: Annotated[
        float | None, Field(ge=-2, le=2, description="Penalty growing with a token's count.")
    ] = None
    presence_penalty: Annotated[
        float | None, Field(ge=-2, le=2, description="Penalty for any token already used.")
    ] = None

    # DRY ("don't repeat yourself"): a token that would extend a sequence already in the
    # context beyond `dry_allowed_length` tokens is penalised, by multiplier * base ** excess.
    # Unlike repeat_penalty it leaves single words alone (a name said twice is fine) and
    # stops loops. An extension that llama.cpp's server and koboldcpp read.
    dry_multiplier: Annotated[
        float | None, Field(ge=0, le=5, description="DRY strength; 0: off.")
    ] = None
    dry_base: Annotated[
        float | None, Field(ge=1, le=4, description="DRY: how fast the penalty grows.")
    ] = None
    dry_allowed_length: Annotated[
        int | None, Field(ge=1, le=20, description="DRY: repeated tokens allowed unpenalised.")
    ] = None
    dry_penalty_last_n: Annotated[
        int | None,
        Field(ge=-1, le=32768, description="DRY: tokens looked back over; -1: the context."),
    ] = None

    def over(self, base: Sampling) -> Sampling:
        """These settings, falling back to `base` for what they leave unset."""
        return base.model_copy(update=self.model_dump(exclude_none=True))

    def given(self) -> dict[str, float | int]:
        return self.model_dump(exclude_none=True)


# What a turn uses when neither the model nor the request says otherwise.
HOUSE_SAMPLING = Sampling(temperature=0.7)


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    sampling: Sampling = HOUSE_SAMPLING
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finish:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    reasoning: str | None = None  # what the engine returned as reasoning, if anything
    extra: dict[str, object] = field(default_factory=dict)


Chunk = Delta | Finish


@dataclass(frozen=True)
class EngineStatus:
    """What `GET /ready` shows of a loaded engine."""

    state: str  # "up", or for a supervised process "starting" / "down" / "stopped"
    details: dict[str, object] = field(default_factory=dict)


class LLMEngine(ABC):
    """A loaded model. One instance per registered model, shared by all requests."""

    #: how many tokens of prompt plus answer the model takes
    context_window: int
    #: the engine's name in the registry
    kind: str = "llm"
    #: the registered model's sampling defaults (its settings' `sampling`)
    sampling: Sampling = Sampling()

    async def load(self) -> None:  # noqa: B027  (optional hook)
        """Do the slow part of starting (load weights, start a process)."""

    async def memory_need(self) -> int:
        """Bytes of memory this engine will hold on this machine once loaded (0: none
        here, e.g. a remote server). Called before `load()`, to make room for it."""
        return 0

    def check_capacity(self) -> None:  # noqa: B027  (optional hook)
        """Raise EngineBusy if a turn asked for now would find no place; called before a
        turn writes anything, so that a refused turn leaves no trace."""

    @property
    def in_use(self) -> bool:
        """Whether a generation is running or waiting (a busy engine is not unloaded)."""
        return False

    def status(self) -> EngineStatus:
        return EngineStatus("up")

    @abstractmethod
    def stream(self, messages: list[ChatMessage], params: GenerationParams) -> AsyncIterator[Chunk]:
        """Generate. Closing the iterator early (a client went away) stops the generation."""

    @abstractmethod
    async def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts of each text with this model's tokenizer (or a stated estimate)."""

    #: tokens the chat template adds around each message (and a margin for merges at the
    #: boundaries), and once per prompt (the answer's opening, e.g. "<|im_start|>assistant")
    message_overhead: int = 7
    prompt_overhead: int = 8

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Free what the engine holds."""
