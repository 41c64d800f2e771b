"""Every SQL statement about characters, tags, likes, favorites and activity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum

from sqlalchemy import Select, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, joinedload

from personae.db.base import utcnow
from personae.db.upsert import affected_rows, insert_for
from personae.models import Character, CharacterActivity, CharacterTag, Favorite, Like
from personae.pagination import PageRequest

PUBLIC = "public"


class CatalogueSort(StrEnum):
    POPULAR = "popular"
    TRENDING = "trending"
    NEWEST = "newest"


# Each order matches one index of `characters` column for column.
ORDERS = {
    CatalogueSort.POPULAR: (
        Character.likes_count.desc(),
        Character.chat_count.desc(),
        Character.id.desc(),
    ),
    CatalogueSort.TRENDING: (
        Character.chats_7d.desc(),
        Character.chat_count.desc(),
        Character.id.desc(),
    ),
    CatalogueSort.NEWEST: (Character.created_at.desc(), Character.id.desc()),
}


class CharacterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # one character
    async def get(self, character_id: str, *, with_owner: bool = False) -> Character | None:
        stmt = select(Character).where(Character.id == character_id)
        if with_owner:
            stmt = stmt.options(joinedload(Character.owner))
        return (await self.session.scalars(stmt)).first()

    async def add(self, character: Character) -> None:
        self.session.add(character)
        await self.session.flush()
        await self._write_tags(character)

    async def save(self, character: Character, *, tags_changed: bool) -> None:
        await self.session.flush()
        if tags_changed:
            await self.session.execute(
                delete(CharacterTag).where(CharacterTag.character_id == character.id)
            )
            await self._write_tags(character)
        else:
            await self.session.execute(
                update(CharacterTag)
                .where(CharacterTag.character_id == character.id)
                .values(visibility=character.visibility)
            )

    async def _write_tags(self, character: Character) -> None:
        if character.tags:
            await self.session.execute(
                insert(CharacterTag),
                [
                    {"character_id": character.id, "tag": t, "visibility": character.visibility}
                    for t in character.tags
                ],
            )

    async def delete(self, character: Character) -> None:
        await self.session.delete(character)
        await self.session.flush()

    # lists
    async def _page(
        self, stmt: Select[Character], count: Select[int], page: PageRequest
    ) -> tuple[Sequence[Character], int]:
        rows = (await self.session.scalars(stmt.offset(page.offset).limit(page.size))).all()
        total = int(await self.session.scalar(count) or 0)
        return rows, total

    async def catalogue(
        self, tags: Sequence[str], sort: CatalogueSort, page: PageRequest
    ) -> tuple[Sequence[Character], int]:
        """Public characters carrying every tag in `tags`, in the order of `sort`."""
        stmt = select(Character).where(Character.visibility == PUBLIC)
        if not tags:
            count = (
                select(func.count()).select_from(Character).where(Character.visibility == PUBLIC)
            )
            return await self._page(stmt.order_by(*ORDERS[sort]), count, page)
        # Characters with all the tags: counted from the tag index alone.
        matching = (
            select(CharacterTag.character_id)
            .where(CharacterTag.tag.in_(tags), CharacterTag.visibility == PUBLIC)
            .group_by(CharacterTag.character_id)
            .having(func.count() == len(tags))
        )
        if len(tags) == 1:
            count = (
                select(func.count())
                .select_from(CharacterTag)
                .where(CharacterTag.tag == tags[0], CharacterTag.visibility == PUBLIC)
            )
        else:
            count = select(func.count()).select_from(matching.subquery())
        for tag in tags:
            stmt = stmt.where(
                exists().where(CharacterTag.character_id == Character.id, CharacterTag.tag == tag)
            )
        return await self._page(stmt.order_by(*ORDERS[sort]), count, page)

    async def owned(self, owner_id: str, page: PageRequest) -> tuple[Sequence[Character], int]:
        stmt = (
            select(Character)
            .where(Character.owner_id == owner_id)
            .order_by(Character.created_at.desc(), Character.id.desc())
        )
        count = select(func.count()).select_from(Character).where(Character.owner_id == owner_id)
        return await self._page(stmt, count, page)

    async def count_owned(self, owner_id: str) -> int:
        stmt = select(func.count()).select_from(Character).where(Character.owner_id == owner_id)
        return int(await self.session.scalar(stmt) or 0)

    # likes
    async def add_like(self, account_id: str, character_id: str) -> bool:
        """Like once; True if this call added it. Safe against concurrent duplicates."""
        stmt = (
            insert_for(self.session, Like)
            .values(account_id=account_id, character_id=character_id, created_at=utcnow())
            .on_conflict_do_nothing()
        )
        added = bool(affected_rows(await self.session.execute(stmt)))
        if added:
            await self._bump(character_id, Character.likes_count, +1)
        return added

    async def remove_like(self, account_id: str, character_id: str) -> bool:
        result = await self.session.execute(
            delete(Like).where(Like.account_id == account_id, Like.character_id == character_id)
        )
        removed = bool(affected_rows(result))
        if removed:
            await self._bump(character_id, Character.likes_count, -1)
        return removed

    # favorites
    async def get_favorite(self, account_id: str, character_id: str) -> Favorite | None:
        return await self.session.get(Favorite, (account_id, character_id))

    async def add_favorite(self, account_id: str, character_id: str) -> Favorite:
        """Favorite once, keeping the first `favorited_at`. Safe against concurrent duplicates."""
        stmt = (
            insert_for(self.session, Favorite)
            .values(account_id=account_id, character_id=character_id, favorited_at=utcnow())
            .on_conflict_do_nothing()
        )
        if affected_rows(await self.session.execute(stmt)):
            await self._bump(character_id, Character.followers_count, +1)
        favorite = await self.session.get(Favorite, (account_id, character_id))
        assert favorite is not None  # inserted above or already there
        return favorite

    async def remove_favorite(self, account_id: str, character_id: str) -> bool:
        result = await self.session.execute(
            delete(Favorite).where(
                Favorite.account_id == account_id, Favorite.character_id == character_id
            )
        )
        removed = bool(affected_rows(result))
        if removed:
            await self._bump(character_id, Character.followers_count, -1)
        return removed

    async def favorites(
        self, account_id: str, page: PageRequest
    ) -> tuple[Sequence[tuple[Character, Favorite]], int]:
        """The account's favorites that it can still see (public, or its own)."""
        visible = (Character.visibility == PUBLIC) | (Character.owner_id == account_id)
        base = select(Character, Favorite).join(Favorite, Favorite.character_id == Character.id)
        stmt = (
            base.where(Favorite.account_id == account_id, visible)
            .order_by(Favorite.favorited_at.desc(), Character.id.desc())
            .offset(page.offset)
            .limit(page.size)
        )
        rows = [(c, f) for c, f in await self.session.execute(stmt)]
        count = (
            select(func.count())
            .select_from(Favorite)
            .join(Character, Favorite.character_id == Character.id)
            .where(Favorite.account_id == account_id, visible)
        )
        return rows, int(await self.session.scalar(count) or 0)

    async def count_favorites(self, account_id: str) -> int:
        stmt = select(func.count()).select_from(Favorite).where(Favorite.account_id == account_id)
        return int(await self.session.scalar(stmt) or 0)

    # counters and activity
    async def _bump(
        self, character_id: str, column: InstrumentedAttribute[int], delta: int
    ) -> None:
        await self.session.execute(
            update(Character).where(Character.id == character_id).values({column: column + delta})
        )

    async def add_activity(self, character_id: str, day: date, chats: int) -> None:
        stmt = insert_for(self.session, CharacterActivity).values(
            character_id=character_id, day=day, chats=chats
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["character_id", "day"],
                set_={"chats": CharacterActivity.chats + stmt.excluded.chats},
            )
        )
        await self.session.execute(
            update(Character)
            .where(Character.id == character_id)
            .values(chats_7d=Character.chats_7d + chats)
        )

    async def increment_chat_count(self, character_id: str) -> None:
        await self._bump(character_id, Character.chat_count, +1)

    async def refresh_trending(self, since: date) -> None:
        """Recompute `chats_7d` from the daily buckets since `since`, and drop older buckets.
        Only characters that had activity are touched."""
        recent = (
            select(func.coalesce(func.sum(CharacterActivity.chats), 0))
            .where(CharacterActivity.character_id == Character.id, CharacterActivity.day >= since)
            .scalar_subquery()
        )
        await self.session.execute(
            update(Character).where(Character.chats_7d > 0).values(chats_7d=recent)
        )
        await self.session.execute(delete(CharacterActivity).where(CharacterActivity.day < since))
