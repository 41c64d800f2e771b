"""`GET /health`: liveness and database reachability, without authentication."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from personae import __version__
from personae.api.deps import StateDep
from personae.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: Literal["ok"]


@router.get("/health", summary="Liveness and database check")
async def health(state: StateDep) -> Health:
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable("Database unreachable") from exc
    return Health(status="ok", version=__version__, database="ok")
