"""Character Cards in and out of the characters API (`/v1/characters/import`,
`/v1/characters/{id}/card`) and a character's lorebook (`/v1/characters/{id}/lorebook`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from starlette.datastructures import UploadFile

from personae.api.deps import CharacterServiceDep, CurrentAccount, StateDep
from personae.api.openapi import inline_refs
from personae.character.card import decode_json
from personae.character.lorebook import Lorebook
from personae.dialects.characters.schemas import Done, LorebookOut
from personae.errors import InvalidRequest, UnsupportedMediaType
from personae.models import CharacterLorebook
from personae.models.character import Visibility
from personae.webhook.payloads import character_detail
from personae.webhook.schemas import CharacterDetail

router = APIRouter()

# A card sent as the whole body: its JSON, a PNG, or a CHARX zip (told apart by content).
RAW_TYPES = frozenset(
    {
        "application/json",
        "image/png",
        "application/zip",
        "application/x-zip-compressed",
        "application/octet-stream",
    }
)
MEDIA_TYPES = {"json": "application/json", "png": "image/png", "charx": "application/zip"}
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")

IMPORT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The card: JSON, a PNG with a `chara` or `ccv3` "
                            "tEXt chunk, or a CHARX zip.",
                        },
                        "visibility": {"type": "string", "enum": ["public", "private"]},
                    },
                }
            },
            "application/json": {
                "schema": {"type": "object", "description": "A V1, V2 or V3 card."}
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def _card_upload(request: Request) -> tuple[bytes, Visibility | None]:
    """The card's bytes and the form's `visibility`, from a multipart form (`file`) or
    the whole body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in RAW_TYPES:
        return await request.body(), None
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "Content-Type must be multipart/form-data (a `file` part), or the card itself: "
            "application/json, image/png or application/zip",
            details={"content_type": content_type},
        )
    form = await request.form(max_files=1, max_fields=2)
    raw: bytes | None = None
    visibility: Visibility | None = None
    for key, value in form.multi_items():
        if key == "file" and isinstance(value, UploadFile) and raw is None:
            raw = await value.read()
        elif key == "visibility" and isinstance(value, str) and visibility is None:
            visibility = _visibility(value)
        else:
            raise InvalidRequest(
                f"{key}: not a part this form takes, or given twice (it takes a `file` and "
                "an optional `visibility`)",
                details={"field": key},
            )
    if raw is None:
        raise InvalidRequest("file: Field required", details={"field": "file"})
    return raw, visibility


def _visibility(value: str) -> Visibility:
    try:
        return Visibility(value)
    except ValueError as exc:
        raise InvalidRequest(
            "visibility: must be 'public' or 'private'", details={"field": "visibility"}
        ) from exc


@router.post(
    "/characters/import",
    status_code=status.HTTP_201_CREATED,
    summary="Create a character from a Character Card (JSON, PNG or CHARX)",
    openapi_extra=IMPORT_DOC,
    responses={
        415: {"description": "Neither a card nor a multipart form (`unsupported_media_type`)"}
    },
)
async def import_card(
    request: Request,
    account: CurrentAccount,
    service: CharacterServiceDep,
    state: StateDep,
    visibility: Annotated[
        Visibility | None,
        Query(description="`public` (the default) or `private`; or a form field."),
    ] = None,
) -> CharacterDetail:
    raw, given = await _card_upload(request)
    if given is not None and visibility is not None and given != visibility:
        raise InvalidRequest(
            "visibility: given in the query and the form with different values",
            details={"field": "visibility"},
        )
    chosen = given or visibility or Visibility.PUBLIC
    character = await service.import_card(account, raw, chosen)
    return character_detail(state.storage, character)


@router.get(
    "/characters/{character_id}/card",
    summary="A character as a Character Card",
    response_class=Response,
    responses={
        200: {
            "description": "The card file.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def export_card(
    character_id: str,
    account: CurrentAccount,
    service: CharacterServiceDep,
    file_format: Annotated[
        Literal["png", "json", "charx"],
        Query(
            alias="format",
            description="`png` (the avatar, or a plain image, carrying the card), `json`, "
            "or `charx` (a zip with `card.json` and the avatar as its icon).",
        ),
    ] = "png",
    spec: Annotated[
        Literal["v2", "v3"],
        Query(description="`v2` (`chara_card_v2`) or `v3` (`chara_card_v3`)."),
    ] = "v2",
) -> Response:
    body = await service.export_card(account, character_id, file_format, spec)
    extension = "card.json" if file_format == "json" else file_format
    filename = f"{_UNSAFE_FILENAME.sub('_', character_id)}.{extension}"
    return Response(
        body,
        media_type=MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# lorebooks
def _lorebook_out(character_id: str, row: CharacterLorebook | None) -> LorebookOut:
    return LorebookOut(
        character_id=character_id,
        lorebook=row.book if row else None,
        updated_at=row.updated_at if row else None,
    )


@router.get("/characters/{character_id}/lorebook", summary="One's own character's lorebook")
async def get_lorebook(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> LorebookOut:
    return _lorebook_out(character_id, await service.lorebook(account, character_id))


@router.put(
    "/characters/{character_id}/lorebook",
    summary="Replace one's own character's lorebook",
    responses={415: {"description": "Not JSON (`unsupported_media_type`)"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_refs(Lorebook.model_json_schema())}},
        }
    },
)
async def put_lorebook(
    character_id: str, request: Request, account: CurrentAccount, service: CharacterServiceDep
) -> LorebookOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType(
            "Content-Type must be application/json", details={"content_type": content_type}
        )
    book = decode_json(await request.body(), "lorebook")
    return _lorebook_out(character_id, await service.set_lorebook(account, character_id, book))


@router.delete("/characters/{character_id}/lorebook", summary="Remove one's own lorebook")
async def delete_lorebook(
    character_id: str, account: CurrentAccount, service: CharacterServiceDep
) -> Done:
    await service.delete_lorebook(account, character_id)
    return Done(message="Lorebook deleted", character_id=character_id)
