from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.models import Model


class ModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, model: Model) -> None:
        self.session.add(model)
        await self.session.flush()

    async def get(self, model_id: str) -> Model | None:
        return await self.session.get(Model, model_id)

    async def delete(self, model: Model) -> None:
        await self.session.delete(model)
        await self.session.flush()

    async def list_all(self) -> Sequence[Model]:
        stmt = select(Model).order_by(Model.type, Model.created_at, Model.id)
        return (await self.session.scalars(stmt)).all()

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

    async def find_by_setting(self, engine: str, key: str, value: str) -> Model | None:
        """A model of `engine` whose settings hold key=value (few rows: filtered here)."""
        stmt = select(Model).where(Model.engine == engine)
        return next(
            (m for m in (await self.session.scalars(stmt)).all() if m.settings.get(key) == value),
            None,
        )

    async def find_by_engine(self, engine: str) -> Model | None:
        stmt = select(Model).where(Model.engine == engine).order_by(Model.created_at).limit(1)
        return (await self.session.scalars(stmt)).first()
