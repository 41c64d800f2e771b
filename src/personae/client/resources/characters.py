"""`client.characters`: the characters API's catalogue and one's own characters (`/v1`)."""

from __future__ import annotations

from typing import Literal

from typing_extensions import Unpack

from personae.client._base import Call, clean, deleted, model, unparsed
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, FileInput, SyncResource, body_or_form
from personae.client.types import Character, CharacterFields, CharacterSummary, Deleted, LikeState

Sort = Literal["popular", "trending", "newest"]


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
