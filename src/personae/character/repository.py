"""Every SQL statement about characters, tags, likes, favorites and activity, and about the
image rows that a character's avatar or deletion changes.

The catalogue's rows are copied, in part, into two places that this module alone writes, in
the same transaction as the character: each tag row carries the character's visibility and
sort keys (`_copy_to_tags`), and `catalogue_counts` the number of public characters per tag
and in all, with a version per tag (`_move_counts`). docs/architecture.md ("Catalogue query
plans") shows the plans they buy.
"""

from __future__ import annotations

import secrets
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, joinedload

from personae.character.cursor import SortKey
from personae.db.base import utcnow
from personae.db.functions import strpos
from personae.db.paging import fetch_page
from personae.db.upsert import affected_rows, insert_for
from personae.models import (
    CatalogueCount,
    Character,
    CharacterActivity,
    CharacterLorebook,
    CharacterTag,
    Favorite,
    Image,
    Like,
)
from personae.models.image import ImageStatus
from personae.pagination import PageRequest

PUBLIC = "public"
# The `catalogue_counts` row of the whole catalogue (a tag is never empty).
EVERY_TAG = ""


class CatalogueSort(StrEnum):
    POPULAR = "popular"
    TRENDING = "trending"
    NEWEST = "newest"


# Each order's sort key, most significant first, all descending; the id after them makes
# the order total, so that pages never overlap or skip. The columns have the same names on
# `characters` and `character_tags`, and each order has an index on both that matches it
# column for column (models/character.py).
SORT_KEYS: dict[CatalogueSort, tuple[str, ...]] = {
    CatalogueSort.POPULAR: ("likes_count", "chat_count"),
    CatalogueSort.TRENDING: ("chats_7d", "chat_count"),
    CatalogueSort.NEWEST: ("created_at",),
}
# What a tag row copies from its character.
COPIED = ("visibility", "likes_count", "chat_count", "chats_7d", "created_at")
# Counts of filters of several tags (`_count_filter`), per process: by database and filter,
# the versions of the filter's tags when counted, and the count. The least recently used go.
_FILTER_COUNTS: OrderedDict[tuple[str, tuple[str, ...]], tuple[tuple[int, ...], int]] = (
    OrderedDict()
)
MAX_FILTER_COUNTS = 10_000


def sort_key(sort: CatalogueSort, character: Character) -> SortKey:
    """A character's place in the order of `sort`: what a cursor holds."""
    return (*(getattr(character, name) for name in SORT_KEYS[sort]), character.id)


def sort_key_types(sort: CatalogueSort) -> tuple[type, ...]:
    """The Python type of each value of a sort key of `sort`."""
    columns = [getattr(Character, name) for name in SORT_KEYS[sort]] + [Character.id]
    return tuple(column.type.python_type for column in columns)


def other_tags(tags: Sequence[str], tag: str) -> str:
    """`character_tags.other_tags` of the row of `tag`: `,a,b,` (`,` alone for none)."""
    return ",".join(["", *(t for t in tags if t != tag), ""])


@dataclass(frozen=True)
class _Rows:
    """Where a catalogue list reads its order from: the public rows of `characters`, or the
    public tag rows of the filter's rarest tag that carry its other tags too."""

    table: type[Character] | type[CharacterTag]
    id: InstrumentedAttribute[str]
    where: tuple[ColumnElement[bool], ...]

    def key(self, sort: CatalogueSort) -> list[InstrumentedAttribute[Any]]:
        return [getattr(self.table, name) for name in SORT_KEYS[sort]] + [self.id]


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
        if character.visibility == PUBLIC:
            await self._move_counts(Counter([EVERY_TAG, *character.tags]))

    async def save(self, character: Character, *, tags_changed: bool) -> None:
        was = await self._catalogued(character.id)
        await self.session.flush()
        if tags_changed:
            await self.session.execute(
                delete(CharacterTag).where(CharacterTag.character_id == character.id)
            )
            await self._write_tags(character)
        # Visibility, and counters that moved since the character was read.
        await self.session.execute(self._copy_to_tags(Character.id == character.id))
        now = [EVERY_TAG, *character.tags] if character.visibility == PUBLIC else []
        moves = Counter(now)
        moves.subtract(was)
        await self._move_counts(moves)

    async def _write_tags(self, character: Character) -> None:
        if character.tags:
            await self.session.execute(
                insert(CharacterTag),
                [
                    {
                        "character_id": character.id,
                        "tag": t,
                        "other_tags": other_tags(character.tags, t),
                    }
                    | {name: getattr(character, name) for name in COPIED}
                    for t in character.tags
                ],
            )

    # a character's lorebook
    async def get_lorebook(self, character_id: str) -> CharacterLorebook | None:
        return await self.session.get(CharacterLorebook, character_id)

    async def set_lorebook(
        self, character_id: str, book: dict[str, Any], now: datetime
    ) -> CharacterLorebook:
        """Set or replace the book (after the character's row: the lock order)."""
        row = await self.get_lorebook(character_id)
        if row is None:
            row = CharacterLorebook(character_id=character_id, book=book, updated_at=now)
            self.session.add(row)
        else:
            row.book, row.updated_at = book, now
        await self.session.flush()
        return row

    async def delete_lorebook(self, character_id: str) -> bool:
        result = await self.session.execute(
            delete(CharacterLorebook).where(CharacterLorebook.character_id == character_id)
        )
        return affected_rows(result) > 0

    async def delete(self, character: Character) -> None:
        was = await self._catalogued(character.id)
        await self.session.delete(character)
        await self.session.flush()
        moves: Counter[str] = Counter()
        moves.subtract(was)
        await self._move_counts(moves)

    # the image rows that refer to a character: written before the character's row, the
    # lock order (account/billing.py)
    async def unlink_images(self, owner_id: str, character_id: str) -> None:
        """Detach the images made for a character about to be deleted. Done explicitly
        before the DELETE, so image rows are locked before the character's, not after it by
        the foreign key's SET NULL."""
        await self.session.execute(
            update(Image)
            .where(Image.account_id == owner_id, Image.character_id == character_id)
            .values(character_id=None)
        )

    async def avatar_file_deleted(self, owner_id: str, key: str) -> None:
        """Mark the owner's completed images stored at `key` deleted (the avatar's file is
        going). Scoped by account, so the statement walks that account's index range only."""
        await self.session.execute(
            update(Image)
            .where(Image.account_id == owner_id, Image.image_key == key)
            .where(Image.status == ImageStatus.COMPLETED)
            .values(status=ImageStatus.DELETED, image_key=None)
        )

    async def _catalogued(self, character_id: str) -> list[str]:
        """The `catalogue_counts` rows that count the character as it is stored: none if it
        is private, else the whole catalogue's and its tags'. The character's row is locked
        first (written: SQLite has no row locks, and this takes its write lock), so that
        what is read is what this transaction replaces, however many change it at once.
        Nothing is flushed before: the character in the session holds the new values."""
        with self.session.no_autoflush:
            visibility = await self.session.scalar(
                update(Character)
                .where(Character.id == character_id)
                .values(visibility=Character.visibility)
                .returning(Character.visibility)
                .execution_options(synchronize_session=False)
            )
            if visibility != PUBLIC:
                return []
            tags = await self.session.scalars(
                select(CharacterTag.tag).where(CharacterTag.character_id == character_id)
            )
            return [EVERY_TAG, *tags]

    def _copy_to_tags(self, *where: ColumnElement[bool]) -> Update:
        """Copy the visibility and sort keys of the characters matching `where` onto their
        tag rows, writing only the rows that differ (an unchanged write would still leave a
        dead row version on PostgreSQL, which turns index-only scans into heap visits)."""
        tag_columns = tuple_(*(getattr(CharacterTag, name) for name in COPIED))
        character_columns = tuple_(*(getattr(Character, name) for name in COPIED))
        return (
            update(CharacterTag)
            .where(CharacterTag.character_id == Character.id, *where)
            .where(tag_columns != character_columns)
            .values({name: getattr(Character, name) for name in COPIED})
            .execution_options(synchronize_session=False)
        )

    async def _move_counts(self, moves: Counter[str]) -> None:
        """Add `moves` (tag -> change) to `catalogue_counts`, with new versions, in tag
        order: the rows' lock order (account/billing.py), so that two changes never wait on
        each other."""
        version = secrets.randbits(63)
        rows = [
            {"tag": tag, "public_characters": n, "version": version}
            for tag, n in sorted(moves.items())
            if n
        ]
        if not rows:
            return
        stmt = insert_for(self.session, CatalogueCount).values(rows)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tag"],
                set_={
                    "public_characters": CatalogueCount.public_characters
                    + stmt.excluded.public_characters,
                    "version": stmt.excluded.version,
                },
            )
        )

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

    # the catalogue
    async def catalogue(
        self, tags: Sequence[str], sort: CatalogueSort, page: PageRequest
    ) -> tuple[Sequence[Character], int]:
        """Public characters carrying every tag in `tags`, in the order of `sort`: one page,
        and how many there are.

        The page is a range of one index, skipped to by OFFSET, from whichever end of the
        order is nearer: no page walks more than half the list.
        """
        rows, total = await self._catalogue_rows(tags)
        if page.offset >= total:
            return [], total
        end = min(page.offset + page.size, total)
        if total - page.offset < end:
            found = await self._fetch(
                rows, sort, offset=total - end, limit=end - page.offset, backwards=True
            )
        else:
            found = await self._fetch(rows, sort, offset=page.offset, limit=page.size)
        return found, total

    async def search(
        self, text: str, tags: Sequence[str], sort: CatalogueSort, page: PageRequest
    ) -> tuple[Sequence[Character], int]:
        """Public characters whose name or description holds `text` (any case) and that carry
        every tag in `tags`, in the order of `sort`. A scan of the public characters, not an
        index range: the console's search box, not the API's catalogue."""
        pattern = (
            "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        match = or_(
            func.lower(Character.name).like(pattern, escape="\\"),
            func.lower(Character.description).like(pattern, escape="\\"),
        )
        stmt = select(Character).where(Character.visibility == PUBLIC, match)
        for tag in tags:
            stmt = stmt.where(
                select(CharacterTag.character_id)
                .where(CharacterTag.character_id == Character.id, CharacterTag.tag == tag)
                .exists()
            )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        order = [getattr(Character, name).desc() for name in SORT_KEYS[sort]]
        rows = await self.session.scalars(
            stmt.order_by(*order, Character.id.desc()).offset(page.offset).limit(page.size)
        )
        return rows.all(), int(total or 0)

    async def catalogue_after(
        self, tags: Sequence[str], sort: CatalogueSort, after: SortKey, size: int
    ) -> tuple[Sequence[Character], int, bool]:
        """Like `catalogue`, the `size` characters that follow the sort key `after` (keyset
        paging: an index range from there, whatever the depth); and whether more follow."""
        rows, total = await self._catalogue_rows(tags)
        if total == 0:
            return [], 0, False
        found = await self._fetch(rows, sort, after=after, limit=size + 1)
        return found[:size], total, len(found) > size

    async def _catalogue_rows(self, tags: Sequence[str]) -> tuple[_Rows, int]:
        """Where the list of `tags` is read from, and how many characters it holds.

        Untagged, the public characters, counted in `catalogue_counts`. Tagged, the tag rows
        of the filter's rarest tag, whose copies of the sort keys make the order an index
        range; its other tags are checked in the same index (`other_tags`), so that the
        list walks only rows that the rarest tag has. One tag is counted in
        `catalogue_counts` too; several are counted over the rarest tag's rows.
        """
        counted = select(
            CatalogueCount.tag, CatalogueCount.public_characters, CatalogueCount.version
        ).where(CatalogueCount.tag.in_(tags or [EVERY_TAG]))
        found = {tag: (n, version) for tag, n, version in await self.session.execute(counted)}
        counts = {tag: n for tag, (n, _) in found.items()}
        if not tags:
            public = (Character.visibility == PUBLIC,)
            return _Rows(Character, Character.id, public), counts.get(EVERY_TAG, 0)
        rarest = min(tags, key=lambda tag: (counts.get(tag, 0), tag))
        where: tuple[ColumnElement[bool], ...] = (
            CharacterTag.tag == rarest,
            CharacterTag.visibility == PUBLIC,
            *(strpos(CharacterTag.other_tags, f",{t},") > 0 for t in tags if t != rarest),
        )
        rows = _Rows(CharacterTag, CharacterTag.character_id, where)
        total = counts.get(rarest, 0)
        if len(tags) > 1 and total:
            named = tuple(sorted(tags))
            # Every tag has a row here: a missing one would count 0, and be the rarest.
            versions = tuple(found[tag][1] for tag in named)
            total = await self._count_filter(rows, named, versions)
        return rows, total

    async def _count_filter(
        self, rows: _Rows, tags: tuple[str, ...], versions: tuple[int, ...]
    ) -> int:
        """How many characters carry all of several tags: counted over the rarest tag's
        rows, or remembered from the last count while every one of the tags has the
        version it had then (a character joins or leaves a tag only by moving its count,
        which draws a new version)."""
        key = (str(self.session.get_bind().engine.url), tags)
        cached = _FILTER_COUNTS.get(key)
        if cached is not None and cached[0] == versions:
            _FILTER_COUNTS.move_to_end(key)
            return cached[1]
        count = select(func.count()).select_from(CharacterTag).where(*rows.where)
        total = int(await self.session.scalar(count) or 0)
        _FILTER_COUNTS[key] = (versions, total)
        _FILTER_COUNTS.move_to_end(key)
        if len(_FILTER_COUNTS) > MAX_FILTER_COUNTS:
            _FILTER_COUNTS.popitem(last=False)
        return total

    async def _fetch(
        self,
        rows: _Rows,
        sort: CatalogueSort,
        *,
        limit: int,
        offset: int = 0,
        after: SortKey | None = None,
        backwards: bool = False,
    ) -> list[Character]:
        """`limit` characters of `rows` in the order of `sort`, from `offset` (or after the
        key `after`); `backwards` walks the order from its end (the rows still come in the
        order of `sort`). The page's ids and keys come from the index alone, and only then
        are the page's characters read: an OFFSET over a join would read every skipped one."""
        key = rows.key(sort)
        ids = select(*(column.label(f"k{i}") for i, column in enumerate(key))).where(*rows.where)
        if after is not None:
            # A row value compared with a row value: one index range on both databases.
            bound = tuple_(*(literal(v, c.type) for v, c in zip(after, key, strict=True)))
            ids = ids.where(tuple_(*key) < bound)
        ids = ids.order_by(*(c.asc() if backwards else c.desc() for c in key)).limit(limit)
        if offset:
            ids = ids.offset(offset)
        page = ids.subquery("page")
        stmt = (
            select(Character)
            .join(page, Character.id == page.c[f"k{len(key) - 1}"])
            .order_by(*(column.desc() for column in page.c))
        )
        return list((await self.session.scalars(stmt)).all())

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

    async def has_like(self, account_id: str, character_id: str) -> bool:
        return await self.session.get(Like, (account_id, character_id)) is not None

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
        if column.key in COPIED:
            await self.session.execute(self._copy_to_tags(Character.id == character_id))

    async def existing_ids(self, ids: set[str]) -> set[str]:
        """Those of `ids` that are characters still."""
        found = await self.session.scalars(select(Character.id).where(Character.id.in_(ids)))
        return set(found)

    async def add_activity(self, character_id: str, day: date, chats: int) -> None:
        # The character's row first, then its tag rows, then its day's bucket: the lock
        # order (account/billing.py), which a turn that also bumps `chat_count` follows too.
        await self._bump(character_id, Character.chats_7d, chats)
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
        # The tag rows that now differ: those of characters changed just now, which had
        # activity, so copies above zero (a refresh never raises a zero).
        await self.session.execute(self._copy_to_tags(CharacterTag.chats_7d > 0))
        await self.session.execute(delete(CharacterActivity).where(CharacterActivity.day < since))
