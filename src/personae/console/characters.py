"""Characters: the catalogue (tags, sort, search), one's own, favorites; a character's page
(like, favorite, chat, and for its creator: edit with a new image, the lorebook, delete)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import Response

from personae.api.deps import CharacterServiceDep, StateDep
from personae.api.errors import invalid_request
from personae.character.fields import (
    Age,
    Appearance,
    Background,
    Description,
    Greeting,
    Name,
    Personality,
    Scenario,
    Tags,
    split_comma_tags,
)
from personae.character.repository import CatalogueSort
from personae.character.service import CharacterChanges
from personae.console.web import (
    ActingAccount,
    ConsoleAccount,
    check_csrf,
    redirect,
    render,
)
from personae.errors import InvalidRequest, NotFound
from personae.models import Character
from personae.models.character import Visibility
from personae.pagination import PageRequest

router = APIRouter(dependencies=[Depends(check_csrf)])
PAGE_SIZE = 24


class CharacterForm(BaseModel):
    """The form's fields, checked by the same field types as the API's bodies; only those
    sent change (as in `PATCH /v1/characters/{id}`)."""

    name: Name
    description: Description = ""
    personality: Personality = ""
    background: Background = ""
    scenario: Scenario = ""
    greeting: Greeting = ""
    appearance_prompt: Appearance = ""
    tags: Tags = []
    age: Age | None = None
    visibility: Visibility = Visibility.PUBLIC


FIELDS = ("name", "description", "personality", "background", "scenario", "greeting",
          "appearance_prompt", "tags", "age", "visibility")  # fmt: skip


@dataclass(frozen=True)
class Submitted:
    """A character form, checked: the changes, and the image's bytes (None: none chosen)."""

    changes: CharacterChanges
    image: bytes | None


async def submitted(request: Request) -> Submitted:
    form = await request.form()
    fields: dict[str, Any] = {k: v for k in FIELDS if isinstance(v := form.get(k), str)}
    if "tags" in fields:
        try:
            fields["tags"] = split_comma_tags(fields["tags"])
        except ValueError as exc:
            raise InvalidRequest(f"tags: {exc}", details={"field": "tags"}) from exc
    if "age" in fields and not fields["age"].strip():
        fields["age"] = None
    try:
        checked = CharacterForm.model_validate(fields)
    except ValidationError as exc:
        raise invalid_request([e | {"loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    upload = form.get("image")
    image = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
    return Submitted(cast(CharacterChanges, checked.model_dump(exclude_unset=True)), image)


SubmittedForm = Annotated[Submitted, Depends(submitted)]


def _avatar(state: StateDep, character: Character) -> str | None:
    return state.storage.avatar_url(character)


@router.get("/characters")
async def catalogue(
    request: Request,
    account: ConsoleAccount,
    service: CharacterServiceDep,
    state: StateDep,
    view: Annotated[str, Query(pattern="^(catalogue|mine|favorites)$")] = "catalogue",
    q: Annotated[str, Query(max_length=100)] = "",
    tags: Annotated[str, Query(max_length=1_000)] = "",
    sort: CatalogueSort = CatalogueSort.POPULAR,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    reading = PageRequest(page, PAGE_SIZE)
    try:
        wanted = [t.strip().lower() for t in split_comma_tags(tags)]
    except ValueError as exc:
        raise InvalidRequest(f"tags: {exc}", details={"field": "tags"}) from exc
    characters: list[Character]
    if view == "mine":
        result: Any = await service.owned(account, reading)
        characters = list(result.items)
    elif view == "favorites":
        result = await service.favorites(account, reading)
        characters = [character for character, _ in result.items]
    elif q.strip():
        result = await service.search(q, wanted, sort, reading)
        characters = list(result.items)
    else:
        result = await service.catalogue(wanted, sort, reading)
        characters = list(result.items)
    cards = [(c, _avatar(state, c)) for c in characters]
    context = {"cards": cards, "view": view, "q": q, "tags": tags, "sort": sort.value,
               "sorts": [s.value for s in CatalogueSort], "page": result}  # fmt: skip
    return render(request, "characters.html", context)


@router.get("/characters/new")
async def new_character(request: Request, account: ConsoleAccount) -> Response:
    return render(request, "character_form.html", {"character": None, "form": {}})


@router.post("/characters")
async def create_character(
    account: ActingAccount, service: CharacterServiceDep, form: SubmittedForm
) -> Response:
    changes = form.changes
    visibility = changes.pop("visibility", Visibility.PUBLIC)
    character = await service.create(account, changes, visibility, form.image)
    return redirect(f"/console/characters/{character.id}")


@router.get("/characters/{character_id}")
async def character_page(
    character_id: str,
    request: Request,
    account: ConsoleAccount,
    service: CharacterServiceDep,
    state: StateDep,
    edit: bool = False,
) -> Response:
    character = await service.get_visible(account, character_id)
    liked, favorite = await service.relation(account, character)
    own = character.owner_id == account.id
    book = await service.lorebook(account, character_id) if own else None
    context = {
        "character": character,
        "avatar": _avatar(state, character),
        "liked": liked,
        "favorite": favorite,
        "own": own,
        "edit": edit and own,
        "book": json.dumps(book.book, indent=2, ensure_ascii=False) if book else "",
    }
    return render(request, "character.html", context)


@router.post("/characters/{character_id}")
async def update_character(
    character_id: str, account: ActingAccount, service: CharacterServiceDep, form: SubmittedForm
) -> Response:
    await service.update(account, character_id, form.changes, form.image)
    return redirect(f"/console/characters/{character_id}")


@router.post("/characters/{character_id}/delete")
async def delete_character(
    character_id: str, account: ActingAccount, service: CharacterServiceDep
) -> Response:
    await service.delete(account, character_id)
    return redirect("/console/characters?view=mine")


@router.post("/characters/{character_id}/lorebook")
async def set_lorebook(
    character_id: str,
    account: ActingAccount,
    service: CharacterServiceDep,
    book: Annotated[str, Form(max_length=1_000_000)],
) -> Response:
    if not book.strip():
        await service.delete_lorebook(account, character_id)
    else:
        try:
            parsed = json.loads(book)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidRequest(f"lorebook: not valid JSON ({exc})",
                                 details={"field": "book"}) from exc  # fmt: skip
        await service.set_lorebook(account, character_id, parsed)
    return redirect(f"/console/characters/{character_id}")


@router.post("/characters/{character_id}/{action}")
async def relate(
    character_id: str,
    action: str,
    account: ActingAccount,
    service: CharacterServiceDep,
) -> Response:
    """like, unlike, favorite, unfavorite: each as idempotent as in the API."""
    actions = {"like": service.like, "unlike": service.unlike, "favorite": service.favorite,
               "unfavorite": service.unfavorite}  # fmt: skip
    if action not in actions:
        raise NotFound(f"No action {action!r}")
    await actions[action](account, character_id)
    return redirect(f"/console/characters/{character_id}")
