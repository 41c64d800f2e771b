"""Every SQL statement about characters, tags, likes, favorites and activity."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, joinedload

from personae.db.base import utcnow
from personae.db.paging import fetch_page
from personae.db.upsert import affected_rows, insert_for
from personae.models import Character, CharacterActivity, CharacterTag, Favorite, Image, Like
from personae.pagination import PageRequest

PUBLIC = "public"
_PUBLIC_COUNTS: dict[str, tuple[int, float]] = {}
# The `character_tags` row of a tag filter's first tag, which drives the query.
FIRST_TAG = aliased(CharacterTag, name="tag_0")


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

    async def is_public_avatar(self, key: str, owner_id: str) -> bool:
        """Whether `key` is the current avatar of a public character. `owner_id` is the id
        the key was made for: the character's (an upload) or its avatar job's (generated),
        so either way the answer is a primary-key lookup."""
        public_avatar = (Character.image_key == key) & (Character.visibility == PUBLIC)
        if owner_id.startswith("img_"):
            stmt = select(
                exists().where(
                    Image.id == owner_id, Character.id == Image.character_id, public_avatar
                )
            )
        else:
            stmt = select(exists().where(Character.id == owner_id, public_avatar))
        return bool(await self.session.scalar(stmt))

    # lists
    async def _page(
        self, stmt: Select[Character], count: Select[int], page: PageRequest
    ) -> tuple[Sequence[Character], int]:
        return await fetch_page(self.session, stmt, count, page)

    async def catalogue(
        self, tags: Sequence[str], sort: CatalogueSort, page: PageRequest
    ) -> tuple[Sequence[Character], int]:
        """Public characters carrying every tag in `tags`, in the order of `sort`.

        With tags, the plan is chosen per request from the number of matches: walking the
        sort order's index and probing each row's tags costs about (offset + limit) divided
        by the share of public characters that match; gathering the matches from the tag
        index and sorting them costs their number. The cheaper one is used, so neither a
        rare tag nor a deep page of a common one degenerates into a scan.
        """
        public = Character.visibility == PUBLIC
        if not tags:
            count = select(func.count()).select_from(Character).where(public)
            stmt = select(Character).where(public).order_by(*ORDERS[sort])
            return await self._page(stmt, count, page)
        total = int(await self.session.scalar(self._tagged(select(func.count()), tags)) or 0)
        if total == 0:
            return [], 0
        walk = (page.offset + page.size) * await self._public_estimate() / total
        if total <= walk:
            stmt = self._tagged(select(Character), tags).join(
                Character, Character.id == FIRST_TAG.character_id
            )
        else:
            stmt = select(Character).where(public)
            for tag in tags:
                stmt = stmt.where(
                    exists().where(
                        CharacterTag.character_id == Character.id, CharacterTag.tag == tag
                    )
                )
        stmt = stmt.order_by(*ORDERS[sort]).offset(page.offset).limit(page.size)
        return (await self.session.scalars(stmt)).all(), total

    @staticmethod
    def _tagged(stmt: Select[Any], tags: Sequence[str]) -> Select[Any]:
        """`stmt` over public tag rows of the first tag, joined to the others by character:
        a merge of index-only scans, instead of grouping every row of every tag."""
        first = FIRST_TAG
        stmt = stmt.select_from(first).where(first.tag == tags[0], first.visibility == PUBLIC)
        for i, tag in enumerate(tags[1:], start=1):
            other = aliased(CharacterTag, name=f"tag_{i}")
            stmt = stmt.join(
                other,
                (other.character_id == first.character_id)
                & (other.tag == tag)
                & (other.visibility == PUBLIC),
            )
        return stmt

    async def _public_estimate(self) -> int:
        """How many public characters there are, for choosing a plan: cached for a minute
        per database, since the choice needs only the order of magnitude."""
        key = str(self.session.get_bind().engine.url)
        cached = _PUBLIC_COUNTS.get(key)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        count = select(func.count()).select_from(Character).where(Character.visibility == PUBLIC)
        value = int(await self.session.scalar(count) or 0)
        _PUBLIC_COUNTS[key] = (value, now + 60)
        return value

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

    # counters and activity
    async def _bump(
        self, character_id: str, column: InstrumentedAttribute[int], delta: int
    ) -> None:
        await self.session.execute(
            update(Character).where(Character.id == character_id).values({column: column + delta})
        )

    async def add_activity(self, character_id: str, day: date, chats: int) -> None:
        # The character's row first, then its day's bucket: the lock order
        # (account/billing.py), which a turn that also bumps `chat_count` follows too.
        await self.session.execute(
            update(Character)
            .where(Character.id == character_id)
            .values(chats_7d=Character.chats_7d + chats)
        )
        stmt = insert_for(self.session, CharacterActivity).values(
            character_id=character_id, day=day, chats=chats
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["character_id", "day"],
                set_={"chats": CharacterActivity.chats + stmt.excluded.chats},
            )
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
        # Only rows whose value changes are written: rewriting unchanged rows would leave
        # dead tuples (PostgreSQL) that turn the catalogue's index-only counts into scans.
        await self.session.execute(
            update(Character)
            .where(Character.chats_7d > 0, Character.chats_7d != recent)
            .values(chats_7d=recent)
        )
        await self.session.execute(delete(CharacterActivity).where(CharacterActivity.day < since))
