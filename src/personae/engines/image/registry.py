"""The explicit registry of image engines."""

from __future__ import annotations

from personae.engines.image.base import ImageEngine
from personae.engines.image.diffusers_engine import DiffusersConfig, DiffusersEngine
from personae.engines.image.placeholder import PlaceholderConfig, PlaceholderEngine
from personae.engines.image.remote import (
    Automatic1111Config,
    Automatic1111Engine,
    OpenAIImagesConfig,
    OpenAIImagesEngine,
)
from personae.engines.registry import EngineCache, EngineRegistry, EngineSpec

IMAGE_ENGINES: EngineRegistry[ImageEngine] = EngineRegistry(
    "image",
    {
        "placeholder": EngineSpec(PlaceholderConfig, PlaceholderEngine),
        "diffusers": EngineSpec(DiffusersConfig, DiffusersEngine),
        "automatic1111": EngineSpec(Automatic1111Config, Automatic1111Engine),
        "openai": EngineSpec(OpenAIImagesConfig, OpenAIImagesEngine),
    },
)


class ImageEngines(EngineCache[ImageEngine]):
    def __init__(self) -> None:
        super().__init__(IMAGE_ENGINES)
