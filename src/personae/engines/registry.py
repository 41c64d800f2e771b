"""What LLM and image engines share: a registry of engine kinds, each with its settings
model and a builder, and a per-process cache of engines loaded from model rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from personae.errors import InvalidRequest
from personae.models import Model


class Closable(Protocol):
    async def close(self) -> None: ...


E = TypeVar("E", bound=Closable)


@dataclass(frozen=True)
class EngineSpec(Generic[E]):
    config: type[BaseModel]
    build: Callable[[Any], Awaitable[E]]


class Loadable(Closable, Protocol):
    async def load(self) -> None: ...


L = TypeVar("L", bound=Loadable)


def loader(cls: Callable[[Any], L]) -> Callable[[Any], Awaitable[L]]:
    """The usual builder: construct the engine from its config, then `load()` it."""

    async def build(config: Any) -> L:
        engine = cls(config)
        await engine.load()
        return engine

    return build


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

    async def build(self, engine: str, settings: dict[str, Any]) -> E:
        config = self.validate(engine, settings)
        return await self.specs[engine].build(config)


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
                await cached[1].close()
            engine = await self.registry.build(model.engine, model.settings)
            self._engines[model.id] = (fingerprint, engine)
            return engine

    async def close(self) -> None:
        for _, engine in self._engines.values():
            await engine.close()
        self._engines.clear()
