"""Images of the agents API (`/api/v1/images`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from personae.api.deps import CurrentAccount, ImageServiceDep, SessionDep, StateDep
from personae.api.images import finish_image
from personae.api.types import PageNumber
from personae.dialects.agents.schemas import ImageCreate, ImageOut, ImagePage, ImagePagination
from personae.image.service import ImageOrder
from personae.models import Image
from personae.models.image import ImageStatus
from personae.pagination import PageRequest
from personae.storage.files import Storage

router = APIRouter()


def image_out(storage: Storage, image: Image) -> ImageOut:
    return ImageOut(
        id=image.id,
        prompt=image.prompt,
        url=storage.url_for(image.image_key),
        status=image.status,
        error=image.error,
        attempts=image.attempts,
        sd_model_id=image.model_id,
        conversation_id=image.conversation_id,
        message_id=image.message_id,
        width=image.width,
        height=image.height,
        seed=image.seed,
        created_at=image.created_at,
        completed_at=image.completed_at,
    )


@router.post(
    "/images",
    status_code=status.HTTP_201_CREATED,
    summary="Generate an image",
    responses={
        202: {"model": ImageOut, "description": "Accepted: still pending (async, or waited out)"},
        402: {"description": "The balance cannot pay for the image"},
        502: {"description": "The image engine failed"},
    },
)
async def create_image(
    body: ImageCreate,
    account: CurrentAccount,
    service: ImageServiceDep,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> ImageOut:
    """Waits for the image up to `PERSONAE_IMAGE_WAIT_SECONDS` (201 with its `url`); with
    `"async": true`, or when the wait runs out, answers 202 with `status: pending` and the
    image is read later at `GET /api/v1/images/{id}`. With `conversation_id`, the image is
    also posted in that conversation as an agent message without text."""
    order = ImageOrder(**body.model_dump(exclude={"async_"}))
    image = await service.order(account, order)
    if body.async_:
        await session.commit()
    else:
        image = await finish_image(state, session, image)
    if image.status != ImageStatus.COMPLETED:
        response.status_code = status.HTTP_202_ACCEPTED
    return image_out(state.storage, image)


@router.get("/images", summary="The caller's images, newest first")
async def list_images(
    account: CurrentAccount,
    service: ImageServiceDep,
    state: StateDep,
    page: PageNumber = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
) -> ImagePage:
    result = await service.list(account, PageRequest(page, page_size))
    return ImagePage(
        data=[image_out(state.storage, i) for i in result.items],
        pagination=ImagePagination(
            total_items=result.total,
            current_page=page,
            page_size=page_size,
            total_pages=result.pages,
            next_page=page + 1 if page < result.pages else None,
            prev_page=page - 1 if page > 1 else None,
        ),
    )


@router.get("/images/{image_id}", summary="One image, with its status")
async def get_image(
    image_id: str, account: CurrentAccount, service: ImageServiceDep, state: StateDep
) -> ImageOut:
    return image_out(state.storage, await service.get(account, image_id))
