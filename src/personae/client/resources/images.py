"""`client.images`: image generation and one's gallery (the agents API's `/api/v1/images`)."""

from __future__ import annotations

import time

import anyio
from typing_extensions import Unpack

from personae.client._base import Call, clean, model, unparsed
from personae.client.errors import PersonaeError
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, SyncResource
from personae.client.types import Image, ImageOptions

IMAGES = "/api/v1/images"
POLL_INTERVAL = 0.5
DEFAULT_WAIT = 300.0


def _generate(
    prompt: str, wait: bool, idempotency_key: str | None, options: ImageOptions
) -> Call[Image]:
    body = {"prompt": prompt, **options}
    if not wait:
        body["async"] = True
    return Call("POST", IMAGES, model(Image), json=body, idempotency_key=idempotency_key)


def _get(image_id: str) -> Call[Image]:
    return Call("GET", f"{IMAGES}/{image_id}", model(Image))


def _list(page: int | None, page_size: int | None) -> Call[object]:
    return Call("GET", IMAGES, unparsed, params=clean({"page": page, "page_size": page_size}))


def _not_done(image: Image, timeout: float) -> PersonaeError:
    return PersonaeError(f"Image {image.id} is still {image.status} after {timeout:g} s")


class Images(SyncResource):
    def generate(
        self,
        prompt: str,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT,
        idempotency_key: str | None = None,
        **options: Unpack[ImageOptions],
    ) -> Image:
        """Generates an image from `prompt`, charged the model's price per image.

        `wait=True` returns it finished (`status` `completed` with its `url`, or
        `failed` with its `error`), waiting up to `timeout` seconds. `wait=False` returns
        at once with the job `pending`: `wait()` or `get()` it later. A job that fails
        while the server itself waits is raised as a 502 `InternalServerError`.
        """
        image = self._client._request(_generate(prompt, wait, idempotency_key, options))
        return self.wait(image.id, timeout=timeout) if wait and not image.done else image

    def get(self, image_id: str) -> Image:
        """One image job, as it stands."""
        return self._client._request(_get(image_id))

    def wait(self, image_id: str, *, timeout: float = DEFAULT_WAIT) -> Image:
        """Polls an image job until it has ended; raises `PersonaeError` after `timeout`."""
        deadline = time.monotonic() + timeout
        while not (image := self.get(image_id)).done:
            if time.monotonic() >= deadline:
                raise _not_done(image, timeout)
            time.sleep(POLL_INTERVAL)
        return image

    def list(self, *, page: int | None = None, page_size: int | None = None) -> SyncPage[Image]:
        """One's images, newest first; iterate the page for all of them."""
        return self._client._page(_list(page, page_size), Image, Shape.IMAGES)


class AsyncImages(AsyncResource):
    async def generate(
        self,
        prompt: str,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT,
        idempotency_key: str | None = None,
        **options: Unpack[ImageOptions],
    ) -> Image:
        """Generates an image from `prompt` (see `Images.generate`)."""
        image = await self._client._request(_generate(prompt, wait, idempotency_key, options))
        return await self.wait(image.id, timeout=timeout) if wait and not image.done else image

    async def get(self, image_id: str) -> Image:
        """One image job, as it stands."""
        return await self._client._request(_get(image_id))

    async def wait(self, image_id: str, *, timeout: float = DEFAULT_WAIT) -> Image:
        """Polls an image job until it has ended; raises `PersonaeError` after `timeout`."""
        deadline = time.monotonic() + timeout
        while not (image := await self.get(image_id)).done:
            if time.monotonic() >= deadline:
                raise _not_done(image, timeout)
            await anyio.sleep(POLL_INTERVAL)
        return image

    async def list(
        self, *, page: int | None = None, page_size: int | None = None
    ) -> AsyncPage[Image]:
        """One's images, newest first."""
        return await self._client._page(_list(page, page_size), Image, Shape.IMAGES)
