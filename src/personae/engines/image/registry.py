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
from personae.engines.registry import EngineCache, EngineRegistry, EngineSpec, loader

IMAGE_ENGINES: EngineRegistry[ImageEngine] = EngineRegistry(
    "image",
    {
        "placeholder": EngineSpec(PlaceholderConfig, loader(PlaceholderEngine)),
        "diffusers": EngineSpec(DiffusersConfig, loader(DiffusersEngine)),
        "automatic1111": EngineSpec(Automatic1111Config, loader(Automatic1111Engine)),
        "openai": EngineSpec(OpenAIImagesConfig, loader(OpenAIImagesEngine)),
    },
)


class ImageEngines(EngineCache[ImageEngine]):
    def __init__(self) -> None:
        super().__init__(IMAGE_ENGINES)
