"""Routes of the characters API (`/v1`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from personae.account.money import from_micros
from personae.account.service import AccountService
from personae.api.deps import CurrentAccount, SessionDep, require_characters_api
from personae.api.dialect import CHARACTERS_PREFIX
from personae.dialects.characters.schemas import (
    CharactersError,
    ChatRequests,
    Subscription,
    UserMe,
    UserStats,
)

ERRORS = {
    status: {"model": CharactersError, "description": description}
    for status, description in {
        400: "invalid_request",
        401: "unauthorized",
        403: "forbidden, subscription_required or premium_required",
        404: "not_found",
        429: "rate_limited",
        500: "server_error",
    }.items()
}

router = APIRouter(
    prefix=CHARACTERS_PREFIX,
    tags=["characters API"],
    dependencies=[Depends(require_characters_api)],
    responses=ERRORS,  # type: ignore[arg-type]  # FastAPI's own type is narrower than its use
)


@router.get("/user/me", summary="The authenticated user")
async def user_me(account: CurrentAccount, session: SessionDep) -> UserMe:
    usage = await AccountService(session).chat_usage(account)
    return UserMe(
        id=account.id,
        username=account.username,
        email=account.email,
        created_at=account.created_at,
        balance=from_micros(account.balance_micros),
        subscription=Subscription(
            plan=account.plan_name,
            chat_requests=ChatRequests(
                used=usage.used, limit=usage.limit, reset_date=usage.reset_date
            ),
        ),
        # Characters, conversations and favorites arrive with their own issues.
        stats=UserStats(characters_created=0, conversations=0, favorites=0),
    )
