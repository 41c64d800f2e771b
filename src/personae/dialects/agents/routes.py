"""Routes of the agents API (`/api/v1`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from personae.api.deps import SessionDep, authenticate
from personae.api.dialect import AGENTS_PREFIX
from personae.dialects.agents.schemas import AgentsError, ModelOut
from personae.model.service import ModelService, ModelType

ERRORS = {
    status: {"model": AgentsError, "description": description}
    for status, description in {
        400: "Invalid parameters or request format",
        401: "Missing or invalid API key",
        404: "Resource not found",
        429: "Rate limit exceeded",
        500: "Internal error",
    }.items()
}

router = APIRouter(
    prefix=AGENTS_PREFIX,
    tags=["agents API"],
    dependencies=[Depends(authenticate)],
    responses=ERRORS,  # type: ignore[arg-type]  # FastAPI's own type is narrower than its use
)


@router.get("/models", summary="List enabled models of one type")
async def list_models(
    session: SessionDep,
    type: Annotated[ModelType, Query(description="`llm` or `sd`.")],
) -> list[ModelOut]:
    return [ModelOut.of(m) for m in await ModelService(session).list_enabled(type)]
