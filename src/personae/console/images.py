"""The console's images pages: order an image, see the account's images and one image.

An image is ordered as the agents API's `POST /api/v1/images` with `"async": true` does
(the same schema checks the form, the same service charges and queues it); the page then
shows it pending and reloads itself until every image on it has finished.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from personae.api.deps import ImageServiceDep, SessionDep, StateDep
from personae.api.errors import invalid_request
from personae.api.types import PageNumber
from personae.console.web import ActingAccount, ConsoleAccount, check_csrf, redirect, render
from personae.dialects.agents.schemas import ImageCreate
from personae.errors import PersonaeError
from personae.image.service import ImageOrder, ImageService
from personae.model.service import ModelService, ModelType
from personae.models import Account, Image
from personae.models.image import ImageStatus
from personae.pagination import PageRequest
from personae.state import AppState

router = APIRouter(dependencies=[Depends(check_csrf)])
PAGE_SIZE = 24
# Generous: the schema's own limits (2,000 characters) answer with a message on the form.
Prompt = Annotated[str, Form(max_length=10_000)]


def checked(values: dict[str, Any]) -> ImageCreate:
    """The form's values through the agents API's own schema; its complaints as a 400."""
    try:
        return ImageCreate.model_validate(values)
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None


def unfinished(images: list[Image]) -> bool:
    return any(i.status not in ImageStatus.FINISHED for i in images)


async def images_page(
    request: Request,
    state: AppState,
    service: ImageService,
    account: Account,
    page: int = 1,
    form: dict[str, str] | None = None,
    error: PersonaeError | None = None,
) -> Response:
    result = await service.list(account, PageRequest(page, PAGE_SIZE))
    models = await ModelService(service.session).list_enabled(ModelType.SD)
    images = list(result.items)
    context: dict[str, Any] = {
        "images": images,
        "urls": {i.id: state.storage.url_for(i.image_key) for i in images},
        "models": models,
        "page": page,
        "pages": result.pages,
        "total": result.total,
        "form": form or {},
        "error": error,
        "refresh": unfinished(images),
    }
    return render(request, "images.html", context, status=error.status if error else 200)


@router.get("/images")
async def images(
    request: Request,
    account: ConsoleAccount,
    service: ImageServiceDep,
    state: StateDep,
    page: PageNumber = 1,
) -> Response:
    return await images_page(request, state, service, account, page)


@router.post("/images")
async def generate(
    request: Request,
    account: ActingAccount,
    service: ImageServiceDep,
    session: SessionDep,
    state: StateDep,
    prompt: Prompt,
    negative_prompt: Prompt = "",
    sd_model_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    form = {"prompt": prompt, "negative_prompt": negative_prompt, "sd_model_id": sd_model_id}
    values = {"prompt": prompt, "negative_prompt": negative_prompt or None,
              "sd_model_id": sd_model_id or None, "async": True}  # fmt: skip
    try:
        body = checked(values)
        await service.order(account, ImageOrder(**body.model_dump(exclude={"async_"})))
    except PersonaeError as exc:  # 400, 402, 429 (too many queued)
        await session.rollback()  # whatever the order began; then the page afresh
        await session.refresh(account)
        return await images_page(request, state, service, account, form=form, error=exc)
    await session.commit()  # queues the job
    return redirect("/console/images")


@router.get("/images/{image_id}")
async def image(
    request: Request,
    image_id: str,
    account: ConsoleAccount,
    service: ImageServiceDep,
    state: StateDep,
) -> Response:
    found = await service.get(account, image_id)  # 404 for another account's image
    model = await ModelService(service.session).repo.get(found.model_id)
    context = {
        "image": found,
        "url": state.storage.url_for(found.image_key),
        "model": model,
        "refresh": unfinished([found]),
    }
    return render(request, "image.html", context)
