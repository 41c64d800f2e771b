"""Streamed answers: Server-Sent Events read into deltas, then the stored message.

A generating request with `stream=True` answers `text/event-stream`: `delta` events with
`{"content": "…"}`, then one `message` event whose data is the stored message as the
request without `stream` answers it; or, if the turn fails once started, one `error` event
with the dialect's error body. `Stream` (sync) and `AsyncStream` yield `Delta` for each
piece, then the message itself; an `error` event is raised as its typed error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
from pydantic import BaseModel

from personae.client._response import APIObject, RateLimit, ResponseInfo, attach
from personae.client.errors import APIConnectionError, PersonaeError, error_from_body
from personae.client.types import Delta

M = TypeVar("M", bound=BaseModel)


@dataclass
class ServerSentEvent:
    event: str
    data: str


class SSEDecoder:
    """Lines in, events out (the WHATWG rules that matter here: `event`, `data`, blank line
    ends an event, comments and other fields ignored)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class _StreamBase(Generic[M]):
    def __init__(self, response: httpx.Response, message_type: type[M]) -> None:
        self.response = response
        self.info = ResponseInfo.of(response)
        self._message_type = message_type
        self._decoder = SSEDecoder()
        self._pieces: list[str] = []
        self.message: M | None = None

    @property
    def rate_limit(self) -> RateLimit:
        """The rate-limit headers of the answer that opened the stream."""
        return self.info.rate_limit

    @property
    def text(self) -> str:
        """The text streamed so far (the whole answer once the stream is read)."""
        return "".join(self._pieces)

    def _handle(self, line: str) -> Delta | M | None:
        event = self._decoder.feed(line)
        if event is None:
            return None
        if event.event == "delta":
            delta = Delta.model_validate(json.loads(event.data))
            self._pieces.append(delta.content)
            return delta
        if event.event == "message":
            message = self._message_type.model_validate(json.loads(event.data))
            if isinstance(message, APIObject):
                attach(message, self.response)
            self.message = message
            return message
        if event.event == "error":
            raise error_from_body(self.response, json.loads(event.data))
        return None

    def _ended_without_message(self) -> PersonaeError:
        return APIConnectionError(
            "The stream ended before its message event", request=self.response.request
        )


class Stream(_StreamBase[M]):
    """A streamed answer: iterate for `Delta` pieces and, last, the stored message.

    Use it as a context manager (or read it to the end) so that its connection is given
    back; leaving the loop early closes it, which stops the generation on the server.
    """

    def __iter__(self) -> Iterator[Delta | M]:
        try:
            for line in self.response.iter_lines():
                item = self._handle(line)
                if item is not None:
                    yield item
                    if self.message is not None:
                        return
            raise self._ended_without_message()
        except httpx.TransportError as exc:
            raise APIConnectionError(str(exc), request=self.response.request) from exc
        finally:
            self.response.close()

    def until_done(self) -> M:
        """Reads the stream to its end and returns the stored message."""
        for _ in self:
            pass
        assert self.message is not None  # the loop ends with it or raises
        return self.message

    def close(self) -> None:
        """Closes the connection (the server stops generating)."""
        self.response.close()

    def __enter__(self) -> Stream[M]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(_StreamBase[M]):
    """The async twin of `Stream`: `async for` over deltas and, last, the stored message."""

    async def __aiter__(self) -> AsyncIterator[Delta | M]:
        try:
            async for line in self.response.aiter_lines():
                item = self._handle(line)
                if item is not None:
                    yield item
                    if self.message is not None:
                        return
            raise self._ended_without_message()
        except httpx.TransportError as exc:
            raise APIConnectionError(str(exc), request=self.response.request) from exc
        finally:
            await self.response.aclose()

    async def until_done(self) -> M:
        """Reads the stream to its end and returns the stored message."""
        async for _ in self:
            pass
        assert self.message is not None  # the loop ends with it or raises
        return self.message

    async def close(self) -> None:
        """Closes the connection (the server stops generating)."""
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream[M]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
