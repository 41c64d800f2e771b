"""The account's own things: `client.user`, `client.favorites`, and `client.models`."""

from __future__ import annotations

from typing import Literal

from personae.client._base import Call, clean, deleted, model, model_list, unparsed
from personae.client._response import ObjectList
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, SyncResource
from personae.client.types import Deleted, Favorite, FavoriteAdded, Model, User

FAVORITES = "/v1/user/favorites"


def _models(type_: Literal["llm", "sd"]) -> Call[ObjectList[Model]]:
    return Call("GET", "/api/v1/models", model_list(Model), params={"type": type_})


def _favorites(page: int | None, limit: int | None) -> Call[object]:
    return Call("GET", FAVORITES, unparsed, params=clean({"page": page, "limit": limit}))


def _add(character_id: str) -> Call[FavoriteAdded]:
    return Call("POST", f"{FAVORITES}/{character_id}", model(FavoriteAdded))


def _remove(character_id: str) -> Call[Deleted]:
    return Call("DELETE", f"{FAVORITES}/{character_id}", deleted(character_id))


_ME = Call("GET", "/v1/user/me", model(User))


class UserResource(SyncResource):
    def me(self) -> User:
        """The calling account: plan, this month's chat requests, balance, counts."""
        return self._client._request(_ME)


class Favorites(SyncResource):
    def list(self, *, page: int | None = None, limit: int | None = None) -> SyncPage[Favorite]:
        """One's favorite characters, newest first; iterate the page for all of them."""
        return self._client._page(_favorites(page, limit), Favorite, Shape.CHARACTERS)

    def add(self, character_id: str) -> FavoriteAdded:
        """Favorites a character (again is fine: the first `favorited_at` stays)."""
        return self._client._request(_add(character_id))

    def remove(self, character_id: str) -> Deleted:
        """Takes a character off one's favorites (when it is not there, nothing changes)."""
        return self._client._request(_remove(character_id))


class Models(SyncResource):
    def list(self, *, type: Literal["llm", "sd"]) -> ObjectList[Model]:
        """The enabled models of a type: `llm` (chat) or `sd` (images)."""
        return self._client._request(_models(type))


class AsyncUserResource(AsyncResource):
    async def me(self) -> User:
        """The calling account: plan, this month's chat requests, balance, counts."""
        return await self._client._request(_ME)


class AsyncFavorites(AsyncResource):
    async def list(
        self, *, page: int | None = None, limit: int | None = None
    ) -> AsyncPage[Favorite]:
        """One's favorite characters, newest first."""
        return await self._client._page(_favorites(page, limit), Favorite, Shape.CHARACTERS)

    async def add(self, character_id: str) -> FavoriteAdded:
        """Favorites a character."""
        return await self._client._request(_add(character_id))

    async def remove(self, character_id: str) -> Deleted:
        """Takes a character off one's favorites."""
        return await self._client._request(_remove(character_id))


class AsyncModels(AsyncResource):
    async def list(self, *, type: Literal["llm", "sd"]) -> ObjectList[Model]:
        """The enabled models of a type: `llm` (chat) or `sd` (images)."""
        return await self._client._request(_models(type))
