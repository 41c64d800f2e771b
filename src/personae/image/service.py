"""Asking for images and reading them back. The request side of image jobs: it checks the
request, charges the price, writes the job's row and, once that commits, queues it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.account.billing import Billing
from personae.account.caps import QUEUED_IMAGES, AccountCaps, CapCheck
from personae.conversation.repository import ConversationRepository
from personae.conversation.service import owned_conversation
from personae.db.base import utcnow
from personae.db.hooks import after_commit
from personae.engines.image.base import ImageDefaults
from personae.engines.image.registry import IMAGE_ENGINES
from personae.errors import NotFound
from personae.ids import new_id
from personae.image.jobs import JobEvents
from personae.image.repository import ImageRepository
from personae.model.service import ModelService
from personae.models import Account, Image
from personae.models.image import ImageStatus
from personae.observability.logs import REQUEST_ID
from personae.pagination import Page, PageRequest

MAX_SEED = 2**31 - 1
POLL_SECONDS = 0.5  # how often a waiting request rereads a job that runs in another process


@dataclass(frozen=True)
class ImageOrder:
    """What to draw. Unset sizes, steps and guidance take the model's defaults."""

    prompt: str
    sd_model_id: str | None = None
    conversation_id: str | None = None
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None


class ImageService:
    def __init__(
        self,
        session: AsyncSession,
        enqueue: Callable[[str], Awaitable[None]],
        caps: AccountCaps | None = None,
    ) -> None:
        """`caps`: the per-account caps that ordering checks (None: none)."""
        self.session = session
        self.repo = ImageRepository(session)
        self.enqueue = enqueue
        self.caps = caps

    async def order(
        self,
        account: Account,
        order: ImageOrder,
        *,
        purpose: str = "image",
        character_id: str | None = None,
    ) -> Image:
        """Check, charge and record a job; it is queued when the caller's transaction
        commits (never for one that rolls back). 402 if the balance cannot pay for it."""
        model = await ModelService(self.session).resolve_image(order.sd_model_id)
        if order.conversation_id is not None:
            await owned_conversation(
                ConversationRepository(self.session), account, order.conversation_id
            )
        defaults = IMAGE_ENGINES.validate(model.engine, model.settings)
        assert isinstance(defaults, ImageDefaults)
        if self.caps is not None:  # the account's row first: the lock order
            await CapCheck(self.session).enforce(
                account.id,
                QUEUED_IMAGES,
                self.caps.queued_images,
                lambda: self.repo.count_unfinished(account.id),
            )
        await Billing(self.session).hold(
            account, model.cost_micros, chat_request=False, model_id=model.id
        )
        now = utcnow()
        image = Image(
            id=new_id("img"),
            account_id=account.id,
            model_id=model.id,
            purpose=purpose,
            prompt=order.prompt,
            negative_prompt=order.negative_prompt
            if order.negative_prompt is not None
            else defaults.negative_prompt,
            width=order.width or defaults.width,
            height=order.height or defaults.height,
            steps=order.steps or defaults.steps,
            guidance=order.guidance if order.guidance is not None else defaults.guidance,
            seed=order.seed if order.seed is not None else secrets.randbelow(MAX_SEED + 1),
            conversation_id=order.conversation_id,
            character_id=character_id,
            cost_micros=model.cost_micros,
            status=ImageStatus.PENDING,
            request_id=REQUEST_ID.get(),
            attempts=0,
            enqueued_at=now,
            created_at=now,
        )
        await self.repo.add(image)
        image_id = image.id
        after_commit(self.session, lambda: self.enqueue(image_id))
        return image

    async def get(self, account: Account, image_id: str) -> Image:
        image = await self.repo.get(image_id)
        if image is None or image.account_id != account.id:
            raise NotFound(f"No image {image_id!r}", details={"id": image_id})
        return image

    async def list(self, account: Account, page: PageRequest) -> Page[Image]:
        rows, total = await self.repo.list_owned(account.id, page)
        return Page(rows, total, page)

    async def queue_depth(self) -> int:
        """Jobs of every account waiting for a worker: the figure the sweep publishes as
        the `personae_queue_depth{queue="image"}` metric, for the console's admin page."""
        return await self.repo.count_pending()


async def wait_for_image(
    sessionmaker: async_sessionmaker[AsyncSession],
    events: JobEvents,
    image_id: str,
    timeout: float,
) -> Image:
    """The job's row once it finished, or as it stands after `timeout` seconds. Woken at
    once by a job finishing in this process; otherwise the row is reread every half second."""
    deadline = time.monotonic() + timeout
    event = events.event(image_id)
    try:
        while True:
            async with sessionmaker() as session:
                image = await ImageRepository(session).get_one(image_id)
            remaining = deadline - time.monotonic()
            if image.status in ImageStatus.FINISHED or remaining <= 0:
                return image
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(POLL_SECONDS, remaining))
    finally:
        events.forget(image_id)
