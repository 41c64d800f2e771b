"""What LLM and image engines share: a registry of engine kinds, each with its settings
model and a builder, and a per-process cache of engines loaded from model rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from personae.errors import InvalidRequest
from personae.models import Model


class Closable(Protocol):
    async def close(self) -> None: ...


class Loadable(Closable, Protocol):
    async def load(self) -> None: ...


E = TypeVar("E", bound=Loadable)


@dataclass(frozen=True)
class EngineSpec(Generic[E]):
    """An engine kind: its settings model, and how to construct an engine from them
    (construction is cheap; `load()` does the work and may be preceded by a check)."""

    config: type[BaseModel]
    create: Callable[[Any], E]


class EngineRegistry(Generic[E]):
    """The explicit list of engines of one kind ("LLM", "image")."""

    def __init__(self, kind: str, specs: dict[str, EngineSpec[E]]) -> None:
        self.kind = kind
        self.specs = specs

    def __contains__(self, engine: str) -> bool:
        return engine in self.specs

    def validate(self, engine: str, settings: dict[str, Any]) -> BaseModel:
        """The engine's settings parsed by its own config model; 400 naming the field."""
        spec = self.specs.get(engine)
        if spec is None:
            raise InvalidRequest(
                f"engine: unknown {self.kind} engine {engine!r} (known: {', '.join(self.specs)})"
            )
        try:
            return spec.config.model_validate(settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise InvalidRequest(f"{where}: {first['msg']}") from exc

    def create(self, engine: str, settings: dict[str, Any]) -> E:
        """The engine, constructed but not loaded."""
        return self.specs[engine].create(self.validate(engine, settings))

    async def build(self, engine: str, settings: dict[str, Any]) -> E:
        """The engine, loaded."""
        built = self.create(engine, settings)
        await built.load()
        return built


class EngineCache(Generic[E]):
    """Loaded engines by model, built on first use; a changed model row is reloaded."""

    def __init__(self, registry: EngineRegistry[E]) -> None:
        self.registry = registry
        self._engines: dict[str, tuple[str, E]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, model: Model) -> E:
        fingerprint = json.dumps([model.engine, model.settings], sort_keys=True)
        async with self._locks.setdefault(model.id, asyncio.Lock()):
            cached = self._engines.get(model.id)
            if cached and cached[0] == fingerprint:
                return cached[1]
            if cached:
                del self._engines[model.id]
                await cached[1].close()
            engine = self.registry.create(model.engine, model.settings)
            await self._load(model, engine)
            self._engines[model.id] = (fingerprint, engine)
            return engine

    async def _load(self, model: Model, engine: E) -> None:
        """Load a new engine (a subclass may make room for it first)."""
        await engine.load()

    def loaded(self) -> dict[str, E]:
        """The loaded engines by model id."""
        return {model_id: engine for model_id, (_, engine) in self._engines.items()}

    async def unload(self, model_id: str) -> None:
        cached = self._engines.pop(model_id, None)
        if cached:
            await cached[1].close()

    async def close(self) -> None:
        for _, engine in self._engines.values():
            await engine.close()
        self._engines.clear()
