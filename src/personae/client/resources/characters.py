"""`client.characters`: the characters API's catalogue and one's own characters (`/v1`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from typing_extensions import Unpack

from personae.client._base import Call, clean, deleted, model, unparsed
from personae.client._response import attach
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, FileInput, SyncResource, body_or_form
from personae.client.types import (
    CardFile,
    Character,
    CharacterFields,
    CharacterSummary,
    Deleted,
    LikeState,
    Lorebook,
)

Sort = Literal["popular", "trending", "newest"]
CardFormat = Literal["png", "json", "charx"]
CardSpec = Literal["v2", "v3"]
_FILENAME = re.compile(r'filename="([^"]+)"')


def _list(
    page: int | None, limit: int | None, tags: list[str] | str | None, sort: Sort | None,
    cursor: str | None,
) -> Call[object]:  # fmt: skip
    if isinstance(tags, list):
        tags = ",".join(tags)
    params = clean({"page": page, "limit": limit, "tags": tags, "sort": sort, "cursor": cursor})
    return Call("GET", "/v1/characters", unparsed, params=params)


def _get(character_id: str) -> Call[Character]:
    return Call("GET", f"/v1/characters/{character_id}", model(Character))


def _create(
    name: str, image: FileInput | None, idempotency_key: str | None, fields: CharacterFields
) -> Call[Character]:
    body = body_or_form({"name": name, **fields}, image)
    return Call("POST", "/v1/characters", model(Character), idempotency_key=idempotency_key, **body)


def _update(character_id: str, image: FileInput | None, fields: CharacterFields) -> Call[Character]:
    body = body_or_form(dict(fields), image)
    return Call("PATCH", f"/v1/characters/{character_id}", model(Character), **body)


def _delete(character_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/v1/characters/{character_id}", deleted(character_id))


def _like(character_id: str, like: bool) -> Call[LikeState]:
    return Call(
        "POST" if like else "DELETE", f"/v1/characters/{character_id}/like", model(LikeState)
    )


def _import(
    card: FileInput | Mapping[str, Any],
    visibility: Literal["public", "private"] | None,
    idempotency_key: str | None,
) -> Call[Character]:
    params = clean({"visibility": visibility})
    if isinstance(card, Mapping):
        body: dict[str, Any] = {"json": dict(card)}
    else:
        content = card.read_bytes() if isinstance(card, Path) else card
        body = {"files": {"file": ("card", content, "application/octet-stream")}}
    return Call(
        "POST", "/v1/characters/import", model(Character), params=params,
        idempotency_key=idempotency_key, **body,
    )  # fmt: skip


def _card_file(response: httpx.Response) -> CardFile:
    named = _FILENAME.search(response.headers.get("content-disposition", ""))
    media_type = response.headers.get("content-type", "").split(";")[0]
    card = CardFile(
        content=response.content, media_type=media_type, filename=named and named.group(1)
    )
    return attach(card, response)


def _export(character_id: str, file_format: CardFormat, spec: CardSpec) -> Call[CardFile]:
    params = {"format": file_format, "spec": spec}
    return Call("GET", f"/v1/characters/{character_id}/card", _card_file, params=params)


def _lorebook(character_id: str, book: Mapping[str, Any] | None = None) -> Call[Lorebook]:
    """GET the lorebook, or PUT `book` as it."""
    path = f"/v1/characters/{character_id}/lorebook"
    if book is None:
        return Call("GET", path, model(Lorebook))
    return Call("PUT", path, model(Lorebook), json=dict(book))


def _delete_lorebook(character_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/v1/characters/{character_id}/lorebook", deleted(character_id))


class Characters(SyncResource):
    def list(
        self,
        *,
        page: int | None = None,
        limit: int | None = None,
        tags: list[str] | str | None = None,
        sort: Sort | None = None,
        cursor: str | None = None,
    ) -> SyncPage[CharacterSummary]:
        """The public catalogue, one page; iterate it for every character of every page.

        `tags`: a character must carry all of them. `sort`: `popular` (default),
        `trending` or `newest`. Iterating follows the catalogue's cursors, which neither
        repeat nor skip a character when others are added before it.
        """
        call = _list(page, limit, tags, sort, cursor)
        return self._client._page(call, CharacterSummary, Shape.CHARACTERS)

    def get(self, character_id: str) -> Character:
        """One character: one's own, or a public one."""
        return self._client._request(_get(character_id))

    def create(
        self,
        *,
        name: str,
        image: FileInput | None = None,
        idempotency_key: str | None = None,
        **fields: Unpack[CharacterFields],
    ) -> Character:
        """Creates a character (public unless `visibility="private"`), with an avatar
        `image` (PNG or JPEG: bytes, a binary file or a path) if given."""
        return self._client._request(_create(name, image, idempotency_key, fields))

    def update(
        self,
        character_id: str,
        *,
        image: FileInput | None = None,
        **fields: Unpack[CharacterFields],
    ) -> Character:
        """Changes the given fields of one's own character, and its avatar with `image`;
        `age=None` clears the age."""
        return self._client._request(_update(character_id, image, fields))

    def delete(self, character_id: str) -> Deleted:
        """Deletes one's own character."""
        return self._client._request(_delete(character_id))

    def like(self, character_id: str) -> LikeState:
        """Likes a character (liking twice counts once)."""
        return self._client._request(_like(character_id, True))

    def unlike(self, character_id: str) -> LikeState:
        """Takes one's like back (when there is none, nothing changes)."""
        return self._client._request(_like(character_id, False))

    def import_card(
        self,
        card: FileInput | Mapping[str, Any],
        *,
        visibility: Literal["public", "private"] | None = None,
        idempotency_key: str | None = None,
    ) -> Character:
        """Creates a character from a Character Card: a PNG or CHARX file (bytes, a binary
        file or a path), or the card's JSON as a dict (V1, V2 or V3). A PNG's image, or a
        CHARX's icon, becomes the avatar."""
        return self._client._request(_import(card, visibility, idempotency_key))

    def export_card(
        self, character_id: str, *, format: CardFormat = "png", spec: CardSpec = "v2"
    ) -> CardFile:
        """A character as a Character Card file: `png` (the avatar carrying the card),
        `json` or `charx`; `spec` `v2` or `v3`."""
        return self._client._request(_export(character_id, format, spec))

    def lorebook(self, character_id: str) -> Lorebook:
        """One's own character's lorebook (`lorebook` None when it has none)."""
        return self._client._request(_lorebook(character_id))

    def set_lorebook(self, character_id: str, book: Mapping[str, Any]) -> Lorebook:
        """Replaces one's own character's lorebook (a card's `character_book`)."""
        return self._client._request(_lorebook(character_id, book))

    def delete_lorebook(self, character_id: str) -> Deleted:
        """Removes one's own character's lorebook."""
        return self._client._request(_delete_lorebook(character_id))


class AsyncCharacters(AsyncResource):
    async def list(
        self,
        *,
        page: int | None = None,
        limit: int | None = None,
        tags: list[str] | str | None = None,
        sort: Sort | None = None,
        cursor: str | None = None,
    ) -> AsyncPage[CharacterSummary]:
        """The public catalogue, one page; `async for` over it for every character."""
        call = _list(page, limit, tags, sort, cursor)
        return await self._client._page(call, CharacterSummary, Shape.CHARACTERS)

    async def get(self, character_id: str) -> Character:
        """One character: one's own, or a public one."""
        return await self._client._request(_get(character_id))

    async def create(
        self,
        *,
        name: str,
        image: FileInput | None = None,
        idempotency_key: str | None = None,
        **fields: Unpack[CharacterFields],
    ) -> Character:
        """Creates a character, with an avatar `image` if given."""
        return await self._client._request(_create(name, image, idempotency_key, fields))

    async def update(
        self,
        character_id: str,
        *,
        image: FileInput | None = None,
        **fields: Unpack[CharacterFields],
    ) -> Character:
        """Changes the given fields of one's own character (and its avatar, with `image`)."""
        return await self._client._request(_update(character_id, image, fields))

    async def delete(self, character_id: str) -> Deleted:
        """Deletes one's own character."""
        return await self._client._request(_delete(character_id))

    async def like(self, character_id: str) -> LikeState:
        """Likes a character (liking twice counts once)."""
        return await self._client._request(_like(character_id, True))

    async def unlike(self, character_id: str) -> LikeState:
        """Takes one's like back."""
        return await self._client._request(_like(character_id, False))

    async def import_card(
        self,
        card: FileInput | Mapping[str, Any],
        *,
        visibility: Literal["public", "private"] | None = None,
        idempotency_key: str | None = None,
    ) -> Character:
        """Creates a character from a Character Card (PNG, CHARX, or its JSON as a dict)."""
        return await self._client._request(_import(card, visibility, idempotency_key))

    async def export_card(
        self, character_id: str, *, format: CardFormat = "png", spec: CardSpec = "v2"
    ) -> CardFile:
        """A character as a Character Card file."""
        return await self._client._request(_export(character_id, format, spec))

    async def lorebook(self, character_id: str) -> Lorebook:
        """One's own character's lorebook."""
        return await self._client._request(_lorebook(character_id))

    async def set_lorebook(self, character_id: str, book: Mapping[str, Any]) -> Lorebook:
        """Replaces one's own character's lorebook."""
        return await self._client._request(_lorebook(character_id, book))

    async def delete_lorebook(self, character_id: str) -> Deleted:
        """Removes one's own character's lorebook."""
        return await self._client._request(_delete_lorebook(character_id))
