"""Routes of the characters API (`/v1`)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import TypeAdapter, ValidationError

from personae.account.money import from_micros
from personae.account.service import AccountService
from personae.api.deps import (
    CharacterServiceDep,
    CurrentAccount,
    SessionDep,
    StateDep,
    require_characters_api,
)
from personae.api.dialect import CHARACTERS_PREFIX
from personae.api.errors import invalid_request
from personae.api.openapi import error_responses, inline_refs
from personae.api.query import reject_control_characters, reject_unknown_query
from personae.api.types import PageNumber
from personae.character.cursor import MAX_CURSOR, bad_cursor
from personae.character.fields import Tags
from personae.character.repository import CatalogueSort
from personae.character.service import CharacterChanges
from personae.dialects.characters.body import read_character_body
from personae.dialects.characters.cards import router as cards_router
from personae.dialects.characters.chat import router as chat_router
from personae.dialects.characters.render import summary
from personae.dialects.characters.schemas import (
    CataloguePagination,
    CharacterCreate,
    CharacterPage,
    CharactersError,
    CharacterUpdate,
    ChatRequests,
    Done,
    FavoriteAdded,
    FavoriteItem,
    FavoritePage,
    LikeState,
    Pagination,
    Subscription,
    UserMe,
    UserStats,
)
from personae.dialects.characters.webhooks import router as webhooks_router
from personae.pagination import MAX_PAGE, CursorRequest, PageRequest
from personae.webhook.payloads import character_detail
from personae.webhook.schemas import CharacterDetail

ERRORS = error_responses(
    CharactersError,
    {
        400: "invalid_request",
        401: "unauthorized",
        403: "forbidden, subscription_required or premium_required",
        404: "not_found",
        429: "rate_limited",
        500: "server_error",
    },
)

router = APIRouter(
    prefix=CHARACTERS_PREFIX,
    tags=["characters API"],
    dependencies=[
        Depends(require_characters_api),
        Depends(reject_unknown_query),
        Depends(reject_control_characters),
    ],
    responses=ERRORS,
)


def _changes(body: CharacterCreate | CharacterUpdate) -> CharacterChanges:
    # The fields carry the core's names, and only those given are changed.
    return cast(CharacterChanges, body.model_dump(exclude_unset=True))


BODY_ERRORS: dict[int | str, Any] = {
    415: {"description": "Neither JSON nor a multipart form (`unsupported_media_type`)"}
}
# Form parts that hold a JSON array (tags may also be comma-separated text).
JSON_PARTS = ("tags", "alternate_greetings")


def character_body_doc(model: type[CharacterCreate] | type[CharacterUpdate]) -> dict[str, Any]:
    """OpenAPI for a body that is JSON or a multipart form with an optional image: the
    form's parts are the JSON body's fields (a part cannot be null), its arrays are parts
    holding JSON, and `image` is the file."""
    schema = inline_refs(model.model_json_schema())
    parts = {name: _not_null(field) for name, field in schema["properties"].items()}
    parts["image"] = {
        "type": "string",
        "format": "binary",
        "description": "PNG or JPEG, 5 MB at most.",
    }
    form = {
        "type": "object",
        "additionalProperties": False,
        "properties": parts,
        "required": schema.get("required", []),
    }
    encoding = {name: {"contentType": "application/json"} for name in JSON_PARTS}
    encoding["image"] = {"contentType": "image/png, image/jpeg"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {"schema": form, "encoding": encoding},
            },
        }
    }


def _not_null(field: dict[str, Any]) -> dict[str, Any]:
    variants = [v for v in field.get("anyOf", []) if v != {"type": "null"}]
    if len(variants) != 1:
        return field
    rest = {k: v for k, v in field.items() if k not in ("anyOf", "default")}
    only: dict[str, Any] = variants[0]
    return only | rest


# catalogue
# The catalogue's `tags` filter: the tags of a character body, comma-separated, which is
# how OpenAPI writes an array in a query (`style: form`, `explode: false`). FastAPI cannot
# declare that style, so the parameter is documented here and read by the same type.
TAGS_FILTER: TypeAdapter[list[str]] = TypeAdapter(Tags)
TAGS_FILTER_DOC = {
    "name": "tags",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": False,
    "description": "Comma-separated tags; a character must carry all of them.",
    "schema": inline_refs(TAGS_FILTER.json_schema()),
}


@router.get(
    "/characters",
    summary="The public catalogue",
    openapi_extra={"parameters": [TAGS_FILTER_DOC]},
)
async def list_characters(
    http: Request,
    service: CharacterServiceDep,
    state: StateDep,
    page: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_PAGE,
            description=f"Page number, from 1 to {MAX_PAGE:,}. Not with `cursor`.",
        ),
    ] = 1,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_CURSOR,
            description=(
                "Read on from where a page ended: its `pagination.next_cursor`, with the same "
                "`sort` and `tags` (`limit` may change). Each page then costs the same "
                "however deep it is, and rows added or removed meanwhile do not shift it. "
                "Not with `page`; a cursor made for another list, or not made by this API, "
                "is 400 `invalid_request`."
            ),
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    tags: Annotated[str | None, Query(max_length=1_000, include_in_schema=False)] = None,
    sort: CatalogueSort = CatalogueSort.POPULAR,
) -> CharacterPage:
    try:
        wanted = TAGS_FILTER.validate_python(tags.split(",") if tags else [])
    except ValidationError as exc:
        raise invalid_request(
            [err | {"loc": ("query", "tags", *err["loc"])} for err in exc.errors()]
        ) from exc
    reading: PageRequest | CursorRequest
    if cursor is None:
        reading = PageRequest(page, limit)
    elif "page" not in http.query_params:
        reading = CursorRequest(cursor, limit)
    else:
        raise bad_cursor("give either page or cursor, not both")
    result = await service.catalogue(wanted, sort, reading)
    return CharacterPage(
        data=[summary(state.storage, c) for c in result.items],
        pagination=CataloguePagination.of(result),
    )


@router.get("/characters/{character_id}", summary="One character")
async def get_character(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep, state: StateDep
) -> CharacterDetail:
    return character_detail(state.storage, await service.get_visible(account, character_id))


@router.post(
    "/characters",
    status_code=status.HTTP_201_CREATED,
    summary="Create a character (JSON, or multipart with an image)",
    openapi_extra=character_body_doc(CharacterCreate),
    responses=BODY_ERRORS,
)
async def create_character(
    request: Request, account: CurrentAccount, service: CharacterServiceDep, state: StateDep
) -> CharacterDetail:
    body, image = await read_character_body(request, CharacterCreate)
    changes = _changes(body)
    visibility = changes.pop("visibility", body.visibility)
    character = await service.create(account, changes, visibility, image)
    return character_detail(state.storage, character)


@router.patch(
    "/characters/{character_id}",
    summary="Change one's own character (JSON, or multipart with a new image)",
    openapi_extra=character_body_doc(CharacterUpdate),
    responses=BODY_ERRORS,
)
async def update_character(
    character_id: str,
    request: Request,
    account: CurrentAccount,
    service: CharacterServiceDep,
    state: StateDep,
) -> CharacterDetail:
    body, image = await read_character_body(request, CharacterUpdate)
    character = await service.update(account, character_id, _changes(body), image)
    return character_detail(state.storage, character)


@router.delete("/characters/{character_id}", summary="Delete one's own character")
async def delete_character(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> Done:
    await service.delete(account, character_id)
    return Done(message="Character deleted", character_id=character_id)


@router.post("/characters/{character_id}/like", summary="Like a character (idempotent)")
async def like_character(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> LikeState:
    character = await service.like(account, character_id)
    return LikeState(character_id=character.id, liked=True, likes=character.likes_count)


@router.delete("/characters/{character_id}/like", summary="Take a like back (idempotent)")
async def unlike_character(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> LikeState:
    character = await service.unlike(account, character_id)
    return LikeState(character_id=character.id, liked=False, likes=character.likes_count)


# user
@router.get("/user/me", summary="The authenticated user")
async def user_me(account: CurrentAccount, session: SessionDep) -> UserMe:
    summary = await AccountService(session).summary(account)
    usage = summary.usage
    return UserMe(
        id=account.id,
        username=account.username,
        email=account.email,
        created_at=account.created_at,
        balance=from_micros(summary.balance_micros),
        subscription=Subscription(
            plan=account.plan_name,
            chat_requests=ChatRequests(
                used=usage.used, limit=usage.limit, reset_date=usage.reset_date
            ),
        ),
        stats=UserStats(
            characters_created=summary.characters_created,
            conversations=summary.conversations,
            favorites=summary.favorites,
        ),
    )


@router.get("/user/favorites", summary="The user's favorite characters, newest first")
async def list_favorites(
    account: CurrentAccount,
    service: CharacterServiceDep,
    state: StateDep,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> FavoritePage:
    result = await service.favorites(account, PageRequest(page, limit))
    return FavoritePage(
        data=[
            FavoriteItem(
                id=c.id,
                name=c.name,
                description=c.description,
                tags=c.tags,
                image_url=state.storage.avatar_url(c),
                created_at=c.created_at,
                favorited_at=f.favorited_at,
            )
            for c, f in result.items
        ],
        pagination=Pagination.of(result),
    )


@router.post("/user/favorites/{character_id}", summary="Add a favorite (idempotent)")
async def add_favorite(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> FavoriteAdded:
    favorite = await service.favorite(account, character_id)
    return FavoriteAdded(character_id=character_id, favorited_at=favorite.favorited_at)


@router.delete("/user/favorites/{character_id}", summary="Remove a favorite (idempotent)")
async def remove_favorite(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> Done:
    await service.unfavorite(account, character_id)
    return Done(message="Character removed from favorites", character_id=character_id)


router.include_router(cards_router)
router.include_router(chat_router)
router.include_router(webhooks_router)
