"""The one interface every image engine implements.

An engine turns `ImageParams` into the bytes of one image file (any format Pillow reads;
the job re-encodes it). Vendor errors are mapped, inside each engine, to `EngineFailed`,
`EngineUnavailable` or `EngineTimeout` from `personae.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Pixel sides are multiples of 8 (the latent grid of Stable Diffusion) within these bounds.
MIN_SIDE = 64
MAX_SIDE = 2048


@dataclass(frozen=True)
class ImageParams:
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance: float
    seed: int


class ImageDefaults(BaseModel):
    """Settings every image engine takes: what a request that names none of them gets."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(default=25, ge=1, le=150)
    guidance: float = Field(default=7.5, ge=0, le=30)
    negative_prompt: str = Field(default="", max_length=2000)


class ImageEngine(ABC):
    #: Shown in the models list: a placeholder engine says that it draws, not diffuses.
    placeholder: bool = False

    async def load(self) -> None:  # noqa: B027  (optional hook)
        """Load weights or open connections; called once before the first generation."""

    @abstractmethod
    async def generate(self, params: ImageParams) -> bytes:
        """One image for the prompt. Must not block the event loop."""

    async def close(self) -> None:  # noqa: B027  (optional hook)
        """Free what `load` took."""
