"""Rules about characters: who sees and changes what, avatars, likes, favorites, the
catalogue and trending. Services flush but never commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from personae.account.caps import CHARACTERS, AccountCaps, CapCheck
from personae.character.card import ImportedCard, Spec, build_card, card_json, parse_card
from personae.character.card_files import (
    CardFile,
    Container,
    charx_with_card,
    place_icon,
    png_with_card,
    read_card_file,
)
from personae.character.cursor import decode_cursor, encode_cursor
from personae.character.lorebook import validate_book
from personae.character.repository import (
    CatalogueSort,
    CharacterRepository,
    sort_key,
    sort_key_types,
)
from personae.db.base import utcnow
from personae.db.hooks import after_commit
from personae.errors import Forbidden, InvalidRequest, NotFound
from personae.ids import new_id
from personae.model.repository import ModelRepository
from personae.models import Account, Character, CharacterLorebook, Favorite
from personae.models.character import Visibility
from personae.pagination import CursorRequest, Page, PageRequest
from personae.storage.files import Storage, new_key, owner_of
from personae.storage.processing import sanitize_image
from personae.webhook import payloads
from personae.webhook.events import emit

TRENDING_DAYS = 7


class CharacterChanges(TypedDict, total=False):
    """Validated fields to set, in the core's names; absent keys are left alone."""

    name: str
    description: str
    personality: str
    background: str
    scenario: str
    greeting: str
    alternate_greetings: list[str]
    example_dialogue: str
    system_prompt: str
    post_history_instructions: str
    creator_notes: str
    card_creator: str
    card_version: str
    card_extensions: dict[str, Any]
    card_extras: dict[str, Any]
    appearance_prompt: str
    age: int | None
    tags: list[str]
    visibility: Visibility
    sd_model_id: str | None


def _read_card(raw: bytes, max_image_bytes: int) -> tuple[CardFile, ImportedCard]:
    """A card's file read and its card checked (blocking: run in a thread)."""
    found = read_card_file(raw, max_image_bytes)
    return found, parse_card(found.card)


def not_found(character_id: str) -> NotFound:
    return NotFound(f"No character {character_id!r}", details={"id": character_id})


class CharacterService:
    def __init__(
        self,
        session: AsyncSession,
        storage: Storage,
        max_upload_bytes: int = 0,
        caps: AccountCaps | None = None,
    ) -> None:
        """`max_upload_bytes` bounds uploaded images (0: an instance that takes none);
        `caps` are the per-account caps that creating checks (None: none, for the CLI and
        the instances that only read)."""
        self.caps = caps
        self.repo = CharacterRepository(session)
        self.models = ModelRepository(session)
        self.storage = storage
        self.max_upload_bytes = max_upload_bytes

    # reading
    @staticmethod
    def can_see(account: Account, character: Character) -> bool:
        """Owners see their characters; public ones are for accounts with catalogue access."""
        if character.owner_id == account.id:
            return True
        return character.visibility == Visibility.PUBLIC and account.plan.characters_api != "none"

    async def get_visible(self, account: Account, character_id: str) -> Character:
        """A character the account may read; 404 otherwise, so private ids do not leak."""
        character = await self.repo.get(character_id, with_owner=True)
        if character is None or not self.can_see(account, character):
            raise not_found(character_id)
        return character

    async def get_own(self, account: Account, character_id: str) -> Character:
        """A character the account may change: 404 if it cannot see it, 403 if not its own."""
        character = await self.get_visible(account, character_id)
        if character.owner_id != account.id:
            raise Forbidden(
                "Only the creator can change this character", details={"id": character_id}
            )
        return character

    async def is_public_avatar(self, key: str) -> bool:
        """Whether the file at `key` is a public character's current avatar (which anyone
        may fetch without a signed URL)."""
        owner = owner_of(key)
        return owner is not None and await self.repo.is_public_avatar(key, owner)

    async def catalogue(
        self, tags: Sequence[str], sort: CatalogueSort, request: PageRequest | CursorRequest
    ) -> Page[Character]:
        """A page of the public catalogue, by number or after a cursor; either way with the
        cursor of the page that follows."""
        if isinstance(request, CursorRequest):
            after = decode_cursor(request.cursor, sort, tags, sort_key_types(sort))
            rows, total, more = await self.repo.catalogue_after(tags, sort, after, request.size)
        else:
            rows, total = await self.repo.catalogue(tags, sort, request)
            more = request.offset + len(rows) < total
        last = sort_key(sort, rows[-1]) if rows and more else None
        next_cursor = encode_cursor(sort, tags, last) if last is not None else None
        return Page(rows, total, request, next_cursor)

    async def search(
        self, text: str, tags: Sequence[str], sort: CatalogueSort, page: PageRequest
    ) -> Page[Character]:
        """The public catalogue narrowed to names and descriptions holding `text`."""
        rows, total = await self.repo.search(text.strip()[:100], tags, sort, page)
        return Page(rows, total, page)

    async def owned(self, account: Account, page: PageRequest) -> Page[Character]:
        rows, total = await self.repo.owned(account.id, page)
        return Page(rows, total, page)

    # writing
    async def create(
        self,
        owner: Account,
        changes: CharacterChanges,
        default_visibility: Visibility,
        image: bytes | None = None,
    ) -> Character:
        if "name" not in changes:
            raise InvalidRequest("name: Field required")
        if self.caps is not None:
            await CapCheck(self.repo.session).enforce(
                owner.id, CHARACTERS, self.caps.characters, lambda: self.repo.count_owned(owner.id)
            )
        now = utcnow()
        character = Character(
            id=new_id("char"),
            owner_id=owner.id,
            visibility=default_visibility,
            tags=[],
            created_at=now,
            updated_at=now,
            likes_count=0,
            chat_count=0,
            followers_count=0,
            chats_7d=0,
        )
        await self._apply(character, changes, image)
        # Loaded, not assigned: `owner_id` is the truth, and the owner row stays out of this
        # session (it may be the authentication cache's shared row; see Character.owner).
        set_committed_value(character, "owner", owner)
        await self.repo.add(character)
        await self._emit(character, "character.created")
        return character

    async def update(
        self,
        account: Account,
        character_id: str,
        changes: CharacterChanges,
        image: bytes | None = None,
    ) -> Character:
        character = await self.get_own(account, character_id)
        old_image = character.image_key
        await self._apply(character, changes, image)
        character.updated_at = utcnow()
        if image is not None and old_image:
            await self._retire_avatar(character.owner_id, old_image)
        await self.repo.save(character, tags_changed="tags" in changes)
        await self._emit(character, "character.updated")
        return character

    async def set_avatar(self, character_id: str, key: str, now: datetime) -> None:
        """Make the generated file at `key` the character's avatar (its avatar job
        finished); the previous avatar's file goes once this commits. Nothing if the
        character was deleted while the avatar was made."""
        character = await self.repo.get(character_id, with_owner=True)
        if character is None:
            return
        old = character.image_key
        if old and old != key:
            await self._retire_avatar(character.owner_id, old)
        character.image_key = key
        character.updated_at = now
        await self.repo.session.flush()
        await self._emit(character, "character.updated")

    async def _emit(self, character: Character, event_type: str) -> None:
        await emit(
            self.repo.session,
            character.owner_id,
            event_type,
            payloads.character(self.storage, character),
        )

    async def delete(self, account: Account, character_id: str) -> None:
        """Delete a character and its avatar file. The images made for it stay (they were
        paid for), detached; the one whose file was its avatar becomes `deleted`."""
        character = await self.get_own(account, character_id)
        # Image rows first, then the character's: the lock order.
        await self.repo.unlink_images(character.owner_id, character.id)
        if character.image_key:
            await self._retire_avatar(character.owner_id, character.image_key)
        await self.repo.delete(character)

    async def _retire_avatar(self, owner_id: str, key: str) -> None:
        """An avatar replaced or deleted: its image row becomes `deleted` now (image rows
        before the character's row: the lock order), its file goes once this commits."""
        await self.repo.avatar_file_deleted(owner_id, key)
        after_commit(self.repo.session, lambda: self.storage.delete(key))

    async def _apply(
        self, character: Character, changes: CharacterChanges, image: bytes | None
    ) -> None:
        """Check everything first (model, image), then set fields: a refusal writes nothing."""
        model_id = changes.get("sd_model_id")
        if model_id is not None and await self.models.get_enabled(model_id, "sd") is None:
            raise InvalidRequest(
                f"sd_model_id: no enabled image model {model_id!r}",
                details={"field": "sd_model_id"},
            )
        image_key = None
        if image is not None:
            clean = await asyncio.to_thread(sanitize_image, image, self.max_upload_bytes)
            image_key = new_key("avatars", character.id, clean.ext)
            await self.storage.save(image_key, clean.data)
        values: dict[str, Any] = dict(changes)
        for field, value in values.items():
            setattr(character, field, value)
        if image_key:
            character.image_key = image_key

    # Character Cards and lorebooks
    async def import_card(self, owner: Account, raw: bytes, visibility: Visibility) -> Character:
        """A character made from a card's file (character/card_files.py), like `create`:
        the same caps, the `character.created` event; a PNG's image (a CHARX's icon) is its
        avatar, re-encoded like any upload. Checked whole before anything is written."""
        found, imported = await asyncio.to_thread(_read_card, raw, self.max_upload_bytes)
        changes = cast(CharacterChanges, imported.changes)
        character = await self.create(owner, changes, visibility, found.image)
        if imported.book is not None:
            await self.repo.set_lorebook(character.id, imported.book, character.created_at)
        return character

    async def export_card(
        self, account: Account, character_id: str, container: Container, spec: Spec
    ) -> bytes:
        """A visible character as a card file (404 like reading it)."""
        character = await self.get_visible(account, character_id)
        row = await self.repo.get_lorebook(character.id)
        book = row.book if row else None
        card = build_card(character, book, spec)
        image = None
        if container != "json" and character.image_key:
            image = await self.storage.read(character.image_key)
        ext = character.image_key.rsplit(".", 1)[1] if image and character.image_key else None
        place_icon(card, container, ext)
        text = card_json(card)
        if container == "json":
            return text
        if container == "charx":
            return await asyncio.to_thread(charx_with_card, card, text, image)
        texts = {"chara": text}
        if spec == "v3":  # V2 readers read `chara`: a V2 card beside the V3 one
            texts = {"chara": card_json(build_card(character, book, "v2")), "ccv3": text}
        return await asyncio.to_thread(png_with_card, image, texts)

    async def book_of(self, character_id: str) -> dict[str, Any] | None:
        """The lorebook a turn with the character reads (None: it has none)."""
        row = await self.repo.get_lorebook(character_id)
        return row.book if row else None

    async def lorebook(self, account: Account, character_id: str) -> CharacterLorebook | None:
        """The book of one's own character (None: it has none)."""
        character = await self.get_own(account, character_id)
        return await self.repo.get_lorebook(character.id)

    async def set_lorebook(
        self, account: Account, character_id: str, book: Any
    ) -> CharacterLorebook:
        """Replace the book of one's own character, checked (character/lorebook.py) and
        kept as given."""
        character = await self.get_own(account, character_id)
        await asyncio.to_thread(validate_book, book)
        # The character's row first, then the book's: the order every change takes.
        character.updated_at = utcnow()
        await self.repo.session.flush()
        row = await self.repo.set_lorebook(character.id, book, character.updated_at)
        await self._emit(character, "character.updated")
        return row

    async def delete_lorebook(self, account: Account, character_id: str) -> None:
        character = await self.get_own(account, character_id)
        character.updated_at = utcnow()
        await self.repo.session.flush()
        if await self.repo.delete_lorebook(character.id):
            await self._emit(character, "character.updated")

    # likes and favorites
    async def like(self, account: Account, character_id: str) -> Character:
        character = await self.get_visible(account, character_id)
        await self.repo.add_like(account.id, character.id)
        await self.repo.session.refresh(character, ["likes_count"])
        return character

    async def unlike(self, account: Account, character_id: str) -> Character:
        character = await self.get_visible(account, character_id)
        await self.repo.remove_like(account.id, character.id)
        await self.repo.session.refresh(character, ["likes_count"])
        return character

    async def relation(self, account: Account, character: Character) -> tuple[bool, bool]:
        """Whether the account likes the character, and whether it is a favorite."""
        liked = await self.repo.has_like(account.id, character.id)
        return liked, await self.repo.get_favorite(account.id, character.id) is not None

    async def favorite(self, account: Account, character_id: str) -> Favorite:
        character = await self.get_visible(account, character_id)
        return await self.repo.add_favorite(account.id, character.id)

    async def unfavorite(self, account: Account, character_id: str) -> None:
        character = await self.get_visible(account, character_id)
        await self.repo.remove_favorite(account.id, character.id)

    async def favorites(
        self, account: Account, page: PageRequest
    ) -> Page[tuple[Character, Favorite]]:
        rows, total = await self.repo.favorites(account.id, page)
        return Page(rows, total, page)

    # activity
    async def record_chat_activity(self, character_id: str, now: datetime | None = None) -> None:
        """Count one chat message toward trending (called by the chat service)."""
        await self.repo.add_activity(character_id, (now or utcnow()).date(), 1)

    async def record_conversation_started(self, character_id: str) -> None:
        await self.repo.increment_chat_count(character_id)

    async def refresh_trending(self, now: datetime | None = None) -> None:
        """Recompute every `chats_7d` from the last seven UTC days (today included)."""
        since = (now or utcnow()).date() - timedelta(days=TRENDING_DAYS - 1)
        await self.repo.refresh_trending(since)
