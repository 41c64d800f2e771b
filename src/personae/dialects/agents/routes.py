"""Routes of the agents API (`/api/v1`)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Response, status

from personae.api.deps import (
    CharacterServiceDep,
    CurrentAccount,
    ImageServiceDep,
    SessionDep,
    StateDep,
    authenticate,
)
from personae.api.dialect import AGENTS_PREFIX
from personae.api.images import generate_avatar
from personae.api.openapi import error_responses
from personae.api.query import reject_control_characters, reject_unknown_query
from personae.api.types import PageNumber
from personae.character.service import CharacterChanges
from personae.dialects.agents.conversations import router as conversations_router
from personae.dialects.agents.images import router as images_router
from personae.dialects.agents.schemas import (
    AgentCreate,
    AgentOut,
    AgentsError,
    AgentUpdate,
    ModelOut,
)
from personae.model.service import ModelService, ModelType
from personae.models import Character
from personae.models.character import Visibility
from personae.pagination import PageRequest
from personae.storage.files import Storage

ERRORS = error_responses(
    AgentsError,
    {
        400: "Invalid parameters or request format",
        401: "Missing or invalid API key",
        403: "Not allowed",
        404: "Resource not found",
        429: "Rate limit exceeded",
        500: "Internal error",
    },
)

router = APIRouter(
    prefix=AGENTS_PREFIX,
    tags=["agents API"],
    dependencies=[
        Depends(authenticate),
        Depends(reject_unknown_query),
        Depends(reject_control_characters),
    ],
    responses=ERRORS,
)

# The agents API's names for the core's fields.
FIELD_NAMES = {"personality_prompt": "personality"}


def agent_out(storage: Storage, c: Character) -> AgentOut:
    return AgentOut(
        id=c.id,
        name=c.name,
        appearance_prompt=c.full_appearance_prompt,
        personality_prompt=c.personality,
        description=c.description,
        background=c.background,
        scenario=c.scenario,
        greeting=c.greeting,
        alternate_greetings=c.alternate_greetings,
        example_dialogue=c.example_dialogue,
        system_prompt=c.system_prompt,
        post_history_instructions=c.post_history_instructions,
        creator_notes=c.creator_notes,
        card_creator=c.card_creator,
        card_version=c.card_version,
        avatar_url=storage.avatar_url(c),
        age=c.age,
        tags=c.tags,
        visibility=Visibility(c.visibility),
        sd_model_id=c.sd_model_id,
        created_at=c.created_at,
    )


def _changes(body: AgentCreate | AgentUpdate) -> CharacterChanges:
    given: dict[str, Any] = body.model_dump(exclude_unset=True)
    return cast(CharacterChanges, {FIELD_NAMES.get(k, k): v for k, v in given.items()})


@router.get("/models", summary="List enabled models of one type")
async def list_models(
    session: SessionDep,
    type: Annotated[ModelType, Query(description="`llm` or `sd`.")],
) -> list[ModelOut]:
    return [ModelOut.of(m) for m in await ModelService(session).list_enabled(type)]


@router.get("/agents", summary="The caller's agents, newest first")
async def list_agents(
    account: CurrentAccount,
    service: CharacterServiceDep,
    state: StateDep,
    page: PageNumber = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[AgentOut]:
    result = await service.owned(account, PageRequest(page, page_size))
    return [agent_out(state.storage, c) for c in result.items]


@router.post(
    "/agents",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent",
    responses={
        402: {"description": "The balance cannot pay for the avatar"},
        502: {"description": "The image engine failed to make the avatar"},
    },
)
async def create_agent(
    body: AgentCreate,
    account: CurrentAccount,
    service: CharacterServiceDep,
    images: ImageServiceDep,
    session: SessionDep,
    state: StateDep,
) -> AgentOut:
    """With `sd_model_id`, the avatar is generated from the appearance prompt (age
    included) and the answer waits for it up to `PERSONAE_IMAGE_WAIT_SECONDS`; if it takes
    longer, `avatar_url` is null and appears on the agent once the image is done."""
    changes = _changes(body)
    visibility = changes.pop("visibility", body.visibility)
    agent = await service.create(account, changes, visibility)
    if body.sd_model_id is not None:
        await generate_avatar(state, session, images, account, agent, body.sd_model_id)
    return agent_out(state.storage, agent)


@router.get("/agents/{agent_id}", summary="One agent")
async def get_agent(
    agent_id: str, account: CurrentAccount, service: CharacterServiceDep, state: StateDep
) -> AgentOut:
    return agent_out(state.storage, await service.get_visible(account, agent_id))


@router.patch("/agents/{agent_id}", summary="Change one's own agent")
async def update_agent(
    agent_id: str,
    body: AgentUpdate,
    account: CurrentAccount,
    service: CharacterServiceDep,
    state: StateDep,
) -> AgentOut:
    return agent_out(state.storage, await service.update(account, agent_id, _changes(body)))


@router.delete(
    "/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete one's own agent"
)
async def delete_agent(
    agent_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> Response:
    await service.delete(account, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


router.include_router(conversations_router)
router.include_router(images_router)
