"""`Personae` and `AsyncPersonae`: one client for both of the API's dialects.

Each is an httpx client with the API key, the base URL and the retry policy of `_base`,
and the resources as attributes (`client.characters`, `client.chat`, ...). Pass
`http_client=` to bring one's own httpx client (proxies, transports, limits).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel

from personae.client import resources
from personae.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    BaseClient,
    Call,
)
from personae.client.errors import PersonaeError, error_from_response, transport_error
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.streaming import AsyncStream, Stream

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class Personae(BaseClient):
    """The synchronous client.

    ```python
    from personae.client import Personae

    client = Personae(api_key="...", base_url="http://127.0.0.1:8000")
    for character in client.characters.list(sort="popular"):
        print(character.name)
    ```

    `api_key` defaults to `PERSONAE_API_KEY`, `base_url` to `PERSONAE_BASE_URL` (else
    `http://127.0.0.1:8000`). `timeout` is seconds or an `httpx.Timeout`; `max_retries`
    how many times a request is tried again after a connection error, 429 or 5xx (waiting
    what `Retry-After` says, if it says no more than `max_retry_wait` seconds).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            default_headers=default_headers,
        )
        self._http = http_client or httpx.Client(timeout=self.timeout)
        self._mount_resources()

    def _mount_resources(self) -> None:
        self.characters = resources.Characters(self)
        self.chat = resources.Chat(self)
        self.agents = resources.Agents(self)
        self.conversations = resources.Conversations(self)
        self.messages = resources.Messages(self)
        self.completions = resources.Completions(self)
        self.images = resources.Images(self)
        self.models = resources.Models(self)
        self.favorites = resources.Favorites(self)
        self.user = resources.UserResource(self)
        self.webhooks = resources.Webhooks(self)

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> Personae:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """Sends `call`, retrying as `_base.BaseClient._retry_delay` decides; the answer
        is a success, else its typed error is raised."""
        key = self._idempotency_key(call)
        attempt = 0
        while True:
            request = self._build_request(self._http, call, key)
            error: PersonaeError
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                error = transport_error(exc, request)
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                error = error_from_response(response)
            delay = self._retry_delay(call, attempt, error)
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def _request(self, call: Call[T]) -> T:
        return call.parse(self._send(call))

    def _stream(self, call: Call[Any], message_type: type[M]) -> Stream[M]:
        return Stream(self._send(call, stream=True), message_type)

    def _page(self, call: Call[Any], item_type: type[M], shape: Shape) -> SyncPage[M]:
        def fetch(params: Mapping[str, Any]) -> SyncPage[M]:
            response = self._send(call.with_params(params))
            return SyncPage(response, item_type, shape, params, fetch)

        return fetch(call.params or {})


class AsyncPersonae(BaseClient):
    """The asynchronous client: the same resources as `Personae`, awaited.

    ```python
    from personae.client import AsyncPersonae

    async with AsyncPersonae() as client:
        page = await client.characters.list()
        async for character in page:
            print(character.name)
    ```
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            default_headers=default_headers,
        )
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout)
        self._mount_resources()

    def _mount_resources(self) -> None:
        self.characters = resources.AsyncCharacters(self)
        self.chat = resources.AsyncChat(self)
        self.agents = resources.AsyncAgents(self)
        self.conversations = resources.AsyncConversations(self)
        self.messages = resources.AsyncMessages(self)
        self.completions = resources.AsyncCompletions(self)
        self.images = resources.AsyncImages(self)
        self.models = resources.AsyncModels(self)
        self.favorites = resources.AsyncFavorites(self)
        self.user = resources.AsyncUserResource(self)
        self.webhooks = resources.AsyncWebhooks(self)

    async def close(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPersonae:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """The async twin of `Personae._send`."""
        key = self._idempotency_key(call)
        attempt = 0
        while True:
            request = self._build_request(self._http, call, key)
            error: PersonaeError
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                error = transport_error(exc, request)
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                error = error_from_response(response)
            delay = self._retry_delay(call, attempt, error)
            if delay is None:
                raise error
            await anyio.sleep(delay)
            attempt += 1

    async def _request(self, call: Call[T]) -> T:
        return call.parse(await self._send(call))

    async def _stream(self, call: Call[Any], message_type: type[M]) -> AsyncStream[M]:
        return AsyncStream(await self._send(call, stream=True), message_type)

    async def _page(self, call: Call[Any], item_type: type[M], shape: Shape) -> AsyncPage[M]:
        async def fetch(params: Mapping[str, Any]) -> AsyncPage[M]:
            response = await self._send(call.with_params(params))
            return AsyncPage(response, item_type, shape, params, fetch)

        return await fetch(call.params or {})
