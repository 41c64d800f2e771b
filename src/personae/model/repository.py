from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.models import Model


class ModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_enabled(self, model_type: str) -> Sequence[Model]:
        stmt = (
            select(Model)
            .where(Model.type == model_type, Model.enabled.is_(True))
            .order_by(Model.created_at, Model.id)
        )
        return (await self.session.scalars(stmt)).all()

    async def get_enabled(self, model_id: str, model_type: str) -> Model | None:
        stmt = select(Model).where(
            Model.id == model_id, Model.type == model_type, Model.enabled.is_(True)
        )
        return (await self.session.scalars(stmt)).first()
