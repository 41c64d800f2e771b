"""SQL about image rows that other domains change: a character's avatar files going away.

(The job's own statements still live in `image/jobs.py` and `image/service.py`.)
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.models import Image
from personae.models.image import ImageStatus


class ImageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def file_deleted(self, account_id: str, key: str) -> None:
        """Mark the account's completed images stored at `key` deleted (the file is going).
        Scoped by account, so the statement walks that account's index range only."""
        await self.session.execute(
            update(Image)
            .where(Image.account_id == account_id, Image.image_key == key)
            .where(Image.status == ImageStatus.COMPLETED)
            .values(status=ImageStatus.DELETED, image_key=None)
        )

    async def unlink_character(self, account_id: str, character_id: str) -> None:
        """Detach the images made for a character about to be deleted. Done explicitly
        before the DELETE, so image rows are locked before the character's (the lock order
        in `account/billing.py`), not after it by the foreign key's SET NULL."""
        await self.session.execute(
            update(Image)
            .where(Image.account_id == account_id, Image.character_id == character_id)
            .values(character_id=None)
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
