"""Dependencies as `Annotated` aliases, so that endpoints read like their signature.

Every dependency is `async def`, even where it awaits nothing: FastAPI runs a plain `def`
dependency in its thread pool, a thread hop (and a wait for a free thread) per call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.caps import AccountCaps
from personae.character.service import CharacterService
from personae.config import Settings
from personae.conversation.chat import ChatService
from personae.conversation.lore import LoreSettings
from personae.conversation.service import ConversationService
from personae.errors import SubscriptionRequired, Unauthorized
from personae.image.service import ImageService
from personae.models import Account
from personae.observability import metrics
from personae.state import AppState

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The characters API's header."
)
bearer = HTTPBearer(auto_error=False, description="The agents API's header: `Bearer KEY`.")


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.personae
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed when the endpoint returns, before the
    response is sent; rolled back on any error, so a failed request writes nothing."""
    async with state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": the commit above runs before the response leaves, not after.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def authenticate(
    request: Request,
    state: StateDep,
    x_api_key: Annotated[str | None, Security(api_key_header)] = None,
    authorization: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Account:
    """The caller's account, from either dialect's header, after counting the request
    against the plan's per-minute limit. A key seen in the last few seconds costs no
    database round trip (personae.account.auth)."""
    presented = x_api_key or (authorization.credentials if authorization else None)
    if not presented:
        raise Unauthorized("Missing API key: send `X-API-Key: KEY` or `Authorization: Bearer KEY`")
    account = await state.authenticator.account(presented)
    result = await state.limiter.hit(account.id, account.effective_rate_limit)
    request.state.rate_limit_headers = result.headers()
    if not result.allowed:
        metrics.REFUSALS.labels("rate_limit").inc()
        raise result.error()
    return account


CurrentAccount = Annotated[Account, Depends(authenticate)]


async def require_characters_api(account: CurrentAccount) -> Account:
    if account.plan.characters_api == "none":
        raise SubscriptionRequired(
            f"The characters API (/v1) is not included in the {account.plan_name!r} plan",
            details={"plan": account.plan_name},
        )
    return account


async def get_character_service(state: StateDep, session: SessionDep) -> CharacterService:
    return CharacterService(
        session, state.storage, state.settings.max_upload_bytes, AccountCaps.of(state.settings)
    )


CharacterServiceDep = Annotated[CharacterService, Depends(get_character_service)]


async def get_conversation_service(
    state: StateDep, session: SessionDep, characters: CharacterServiceDep
) -> ConversationService:
    return ConversationService(session, characters, AccountCaps.of(state.settings))


ConversationServiceDep = Annotated[ConversationService, Depends(get_conversation_service)]


async def get_chat_service(state: StateDep) -> ChatService:
    return ChatService(
        state.sessionmaker,
        state.llm_engines,
        state.prompt_template,
        state.storage,
        state.turns,
        state.writer,
        state.chat_activity,
        caps=AccountCaps.of(state.settings),
        max_generation_seconds=state.settings.max_generation_seconds,
        lore=LoreSettings(
            scan_depth=state.settings.lorebook_scan_depth,
            token_budget=state.settings.lorebook_token_budget,
            max_recursion=state.settings.lorebook_max_recursion,
        ),
    )


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


async def get_image_service(state: StateDep, session: SessionDep) -> ImageService:
    return ImageService(session, state.queue.enqueue_image, AccountCaps.of(state.settings))


ImageServiceDep = Annotated[ImageService, Depends(get_image_service)]
