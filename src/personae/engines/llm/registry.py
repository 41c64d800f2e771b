"""The explicit registry of LLM engines."""

from __future__ import annotations

from personae.engines.llm.base import LLMEngine
from personae.engines.llm.llama_cpp import LlamaCppConfig, LlamaCppEngine
from personae.engines.llm.openai_compat import OpenAICompatConfig, OpenAICompatEngine
from personae.engines.registry import EngineCache, EngineRegistry, EngineSpec, loader

LLM_ENGINES: EngineRegistry[LLMEngine] = EngineRegistry(
    "LLM",
    {
        "llama_cpp": EngineSpec(LlamaCppConfig, loader(LlamaCppEngine)),
        "openai": EngineSpec(OpenAICompatConfig, loader(OpenAICompatEngine)),
    },
)


class LLMEngines(EngineCache[LLMEngine]):
    def __init__(self) -> None:
        super().__init__(LLM_ENGINES)
