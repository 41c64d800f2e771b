"""The one interface every language-model engine implements.

An engine turns chat messages into a stream of text pieces ending in a `Finish` with the
token usage. Vendor errors are mapped, inside each engine, to `EngineFailed`,
`EngineUnavailable` or `EngineTimeout` from `personae.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.7
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
