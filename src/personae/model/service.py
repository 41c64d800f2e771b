from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from personae.model.repository import ModelRepository
from personae.models import Model


class ModelType(StrEnum):
    LLM = "llm"
    SD = "sd"


class ModelService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = ModelRepository(session)

    async def list_enabled(self, model_type: ModelType) -> Sequence[Model]:
        return await self.repo.list_enabled(model_type.value)
