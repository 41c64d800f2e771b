"""The explicit registry of LLM engines, and the per-process cache of loaded ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from personae.engines.llm.base import LLMEngine
from personae.engines.llm.llama_cpp import LlamaCppConfig, LlamaCppEngine
from personae.engines.llm.openai_compat import OpenAICompatConfig, OpenAICompatEngine
from personae.errors import InvalidRequest
from personae.models import Model


@dataclass(frozen=True)
class EngineSpec:
    config: type[BaseModel]
    build: Callable[[Any], Awaitable[LLMEngine]]


async def _llama_cpp(config: LlamaCppConfig) -> LLMEngine:
    engine = LlamaCppEngine(config)
    await engine.load()
    return engine


async def _openai(config: OpenAICompatConfig) -> LLMEngine:
    engine = OpenAICompatEngine(config)
    await engine.load()
    return engine


LLM_ENGINES: dict[str, EngineSpec] = {
    "llama_cpp": EngineSpec(LlamaCppConfig, _llama_cpp),
    "openai": EngineSpec(OpenAICompatConfig, _openai),
}


def validate_llm_settings(engine: str, settings: dict[str, Any]) -> BaseModel:
    spec = LLM_ENGINES.get(engine)
    if spec is None:
        raise InvalidRequest(
            f"engine: unknown LLM engine {engine!r} (known: {', '.join(LLM_ENGINES)})"
        )
    try:
        return spec.config.model_validate(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InvalidRequest(f"{where}: {first['msg']}") from exc


class LLMEngines:
    """Loaded engines by model, built on first use; a changed model row is reloaded."""

    def __init__(self) -> None:
        self._engines: dict[str, tuple[str, LLMEngine]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, model: Model) -> LLMEngine:
        fingerprint = json.dumps([model.engine, model.settings], sort_keys=True)
        async with self._locks.setdefault(model.id, asyncio.Lock()):
            cached = self._engines.get(model.id)
            if cached and cached[0] == fingerprint:
                return cached[1]
            if cached:
                await cached[1].close()
            config = validate_llm_settings(model.engine, model.settings)
            engine = await LLM_ENGINES[model.engine].build(config)
            self._engines[model.id] = (fingerprint, engine)
            return engine

    async def close(self) -> None:
        for _, engine in self._engines.values():
            await engine.close()
        self._engines.clear()
