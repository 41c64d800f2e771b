"""The explicit registry of LLM engines, and the per-process cache of loaded ones, which
keeps the embedded models within a memory budget by unloading the least recently used."""

from __future__ import annotations

import asyncio
import logging
import time

from personae.config import Settings
from personae.engines.llm.base import LLMEngine
from personae.engines.llm.llama_cpp import LlamaCppConfig, LlamaCppEngine, LlamaRuntime
from personae.engines.llm.openai_compat import OpenAICompatConfig, OpenAICompatEngine
from personae.engines.registry import EngineCache, EngineRegistry, EngineSpec
from personae.errors import EngineBusy, EngineUnavailable
from personae.models import Model

log = logging.getLogger("personae")
MIB = 1024 * 1024


def llm_registry(runtime: LlamaRuntime | None = None) -> EngineRegistry[LLMEngine]:
    embedded = runtime or LlamaRuntime()

    def llama_cpp(config: LlamaCppConfig) -> LlamaCppEngine:
        return LlamaCppEngine(config, embedded)

    return EngineRegistry(
        "LLM",
        {
            "llama_cpp": EngineSpec(LlamaCppConfig, llama_cpp),
            "openai": EngineSpec(OpenAICompatConfig, OpenAICompatEngine),
        },
    )


#: for validating settings; the server's cache builds with the configured runtime
LLM_ENGINES = llm_registry()


class LLMEngines(EngineCache[LLMEngine]):
    def __init__(
        self, runtime: LlamaRuntime | None = None, memory_budget_bytes: int | None = None
    ) -> None:
        super().__init__(llm_registry(runtime))
        self.memory_budget = memory_budget_bytes
        self._needs: dict[str, int] = {}
        self._last_used: dict[str, float] = {}
        self._room = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMEngines:
        runtime = LlamaRuntime(
            server_binary=settings.llama_server,
            max_waiting=settings.llm_max_queued,
            start_timeout=settings.llm_start_timeout_seconds,
            **({"parallel": settings.llm_parallel} if settings.llm_parallel else {}),
        )
        return cls(runtime, settings.llm_memory_budget_bytes)

    async def get(self, model: Model) -> LLMEngine:
        engine = await super().get(model)
        self._last_used[model.id] = time.monotonic()
        return engine

    async def _load(self, model: Model, engine: LLMEngine) -> None:
        need = await engine.memory_need()
        async with self._room:
            if need and self.memory_budget is not None:
                await self._make_room(model, need)
            self._needs[model.id] = need
        try:
            await engine.load()
        except BaseException:
            self._needs.pop(model.id, None)
            await engine.close()
            raise

    async def _make_room(self, model: Model, need: int) -> None:
        """Unload idle engines, least recently used first, until `need` fits the budget."""
        budget = self.memory_budget or 0
        if need > budget:
            raise EngineUnavailable(
                f"{model.name} needs about {need // MIB} MiB, more than the memory budget "
                f"of {budget // MIB} MiB (PERSONAE_LLM_MEMORY_BUDGET_MB)"
            )
        loaded = self.loaded()
        by_age = sorted(
            (mid for mid in loaded if mid != model.id), key=lambda m: self._last_used.get(m, 0)
        )
        for model_id in by_age:
            if sum(self._needs.get(m, 0) for m in self.loaded()) + need <= budget:
                return
            if self._needs.get(model_id) and not loaded[model_id].in_use:
                log.info("unloading LLM %s to make room for %s", model_id, model.id)
                await self.unload(model_id)
        if sum(self._needs.get(m, 0) for m in self.loaded()) + need > budget:
            raise EngineBusy(
                f"{model.name} does not fit the memory budget while the loaded models are busy",
                headers={"Retry-After": "10"},
            )

    async def unload(self, model_id: str) -> None:
        self._needs.pop(model_id, None)
        self._last_used.pop(model_id, None)
        await super().unload(model_id)
