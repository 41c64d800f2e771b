"""Every SQL statement about image jobs: ordering and reading them, and the job's life
(claim, lease, complete, fail, sweep). The `images` row is the job; each change to its
status is one conditional UPDATE, so that of two runs of one job only one changes it.

(The image rows that a character's avatar or deletion changes are written by
`character/repository.py`, in the character's lock order.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.db.paging import fetch_page
from personae.db.upsert import affected_rows
from personae.models import Image
from personae.models.image import ImageStatus
from personae.pagination import PageRequest


class ImageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ordering and reading
    async def add(self, image: Image) -> None:
        self.session.add(image)
        await self.session.flush()

    async def get(self, image_id: str) -> Image | None:
        return await self.session.get(Image, image_id)

    async def get_one(self, image_id: str) -> Image:
        return await self.session.get_one(Image, image_id)

    async def list_owned(self, account_id: str, page: PageRequest) -> tuple[Sequence[Image], int]:
        """The account's images, newest first, and how many it has."""
        mine = Image.account_id == account_id
        return await fetch_page(
            self.session,
            select(Image).where(mine).order_by(Image.created_at.desc(), Image.id.desc()),
            select(func.count()).select_from(Image).where(mine),
            page,
        )

    async def count_unfinished(self, account_id: str) -> int:
        """The account's image jobs still pending or running (avatars included)."""
        stmt = (
            select(func.count())
            .select_from(Image)
            .where(
                Image.account_id == account_id,
                Image.status.in_((ImageStatus.PENDING, ImageStatus.RUNNING)),
            )
        )
        return int(await self.session.scalar(stmt) or 0)

    # a job's run
    async def claim(
        self, image_id: str, max_attempts: int, now: datetime, lease_until: datetime
    ) -> Row[int, str | None] | None:
        """Take the job for one more attempt if it is pending, or running with a lapsed
        lease, and has attempts left: its attempt number and request id, or None."""
        claimed = await self.session.execute(
            update(Image)
            .where(
                Image.id == image_id,
                Image.attempts < max_attempts,
                or_(
                    Image.status == ImageStatus.PENDING,
                    (Image.status == ImageStatus.RUNNING) & (Image.lease_until < now),
                ),
            )
            .values(
                status=ImageStatus.RUNNING,
                attempts=Image.attempts + 1,
                lease_until=lease_until,
            )
            .returning(Image.attempts, Image.request_id)
        )
        return claimed.first()

    async def release(self, image_id: str, attempt: int, enqueued_at: datetime) -> None:
        """Hand a running attempt back: pending again, the attempt not counted."""
        await self.session.execute(
            update(Image)
            .where(
                Image.id == image_id,
                Image.attempts == attempt,
                Image.status == ImageStatus.RUNNING,
            )
            .values(
                status=ImageStatus.PENDING,
                attempts=Image.attempts - 1,
                lease_until=None,
                enqueued_at=enqueued_at,
            )
        )

    async def renew_lease(self, image_id: str, attempt: int, lease_until: datetime) -> None:
        await self.session.execute(
            update(Image)
            .where(Image.id == image_id, Image.attempts == attempt)
            .values(lease_until=lease_until)
        )

    async def complete(self, image_id: str, attempt: int, key: str, now: datetime) -> bool:
        """Record the attempt's file; False if the attempt no longer holds the job (its
        lease lapsed and another run took over)."""
        done = await self.session.execute(
            update(Image)
            .where(
                Image.id == image_id,
                Image.attempts == attempt,
                Image.status == ImageStatus.RUNNING,
            )
            .values(
                status=ImageStatus.COMPLETED,
                image_key=key,
                completed_at=now,
                lease_until=None,
            )
        )
        return affected_rows(done) == 1

    async def fail(
        self, image_id: str, attempt: int | None, reason: str, now: datetime
    ) -> Row[str, int] | None:
        """Mark an unfinished job failed (only while `attempt` holds it, if given): its
        account and price, to give back; None if it was not this call's to fail."""
        conditions = [Image.id == image_id, Image.status.not_in(ImageStatus.FINISHED)]
        if attempt is not None:
            conditions.append(Image.attempts == attempt)
        failed = await self.session.execute(
            update(Image)
            .where(*conditions)
            .values(status=ImageStatus.FAILED, error=reason, completed_at=now, lease_until=None)
            .returning(Image.account_id, Image.cost_micros)
        )
        return failed.first()

    # recovering
    async def abandoned(
        self, now: datetime, queued_before: datetime | None
    ) -> Sequence[Row[str, int, str]]:
        """Jobs whose lease lapsed, and pending ones (queued before `queued_before`, if
        given): at most 1,000, longest queued first."""
        lapsed = (Image.status == ImageStatus.RUNNING) & (Image.lease_until < now)
        waiting = Image.status == ImageStatus.PENDING
        if queued_before is not None:
            waiting = waiting & (Image.enqueued_at < queued_before)
        return (
            await self.session.execute(
                select(Image.id, Image.attempts, Image.status)
                .where(or_(lapsed, waiting))
                .order_by(Image.enqueued_at)
                .limit(1000)
            )
        ).all()

    async def count_pending(self) -> int:
        stmt = select(func.count()).select_from(Image).where(Image.status == ImageStatus.PENDING)
        return int(await self.session.scalar(stmt) or 0)

    async def mark_enqueued(self, image_ids: Sequence[str], now: datetime) -> None:
        await self.session.execute(
            update(Image).where(Image.id.in_(image_ids)).values(enqueued_at=now)
        )
