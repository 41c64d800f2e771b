"""`GET /health`: liveness and database reachability; `GET /ready`: whether this process
can serve, engine by engine. Neither needs authentication (load balancers call them)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from personae import __version__
from personae.api.deps import StateDep
from personae.errors import ServiceUnavailable
from personae.state import AppState

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: Literal["ok"]


class EngineReadiness(BaseModel):
    model_id: str
    engine: str
    state: str
    details: dict[str, Any]


Reach = Literal["ok", "unreachable", "not_configured"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    database: Literal["ok", "unreachable"]
    redis: Reach = Field(description="`PERSONAE_REDIS_URL`'s server (rate limits, auth changes).")
    queue: Reach = Field(description="The task queue's broker (`PERSONAE_QUEUE_URL`).")
    engines: list[EngineReadiness]


def _reach(answer: bool | None) -> Reach:
    return "not_configured" if answer is None else "ok" if answer else "unreachable"


async def _database_ok(state: AppState) -> bool:
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return False
    return True


@router.get("/health", summary="Liveness and database check")
async def health(state: StateDep) -> Health:
    if not await _database_ok(state):
        raise ServiceUnavailable("Database unreachable")
    return Health(status="ok", version=__version__, database="ok")


@router.get(
    "/ready",
    summary="Readiness: the database, Redis, the broker and each loaded language-model engine",
    responses={503: {"model": Readiness, "description": "Something this process needs is down."}},
)
async def ready(state: StateDep) -> JSONResponse:
    """200 when the database, Redis and the broker (those configured) answer and every
    loaded engine is up; 503 otherwise, with the state of each (an engine is `starting`,
    or `down` while its process is being restarted)."""
    body = await readiness(state)
    return JSONResponse(
        body.model_dump(mode="json"), status_code=200 if body.status == "ok" else 503
    )


async def readiness(state: AppState) -> Readiness:
    """What `/ready` reports (the console's admin page shows it too)."""
    database = await _database_ok(state)
    redis = _reach(await state.limiter.reachable())
    queue = _reach(await state.queue.reachable())
    engines = [
        EngineReadiness(
            model_id=model_id,
            engine=engine.kind,
            state=(status := engine.status()).state,
            details=status.details,
        )
        for model_id, engine in state.llm_engines.loaded().items()
    ]
    ok = database and "unreachable" not in (redis, queue) and all(e.state == "up" for e in engines)
    return Readiness(
        status="ok" if ok else "unavailable",
        version=__version__,
        database="ok" if database else "unreachable",
        redis=redis,
        queue=queue,
        engines=engines,
    )
