"""What the sync and async clients share: settings, how a request is built, when to retry.

One `Call` describes a request; `Personae` and `AsyncPersonae` send it over httpx, each
with its own kind of waiting, and everything they decide is decided here, once.
"""

from __future__ import annotations

import copy
import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from personae import __version__
from personae.client._response import ObjectList, attach, retry_after_seconds
from personae.client.errors import (
    APIConnectionError,
    APIStatusError,
    ConflictError,
    PersonaeError,
)
from personae.client.types import Deleted

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound="BaseClient")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# A chat turn may generate for up to the server's PERSONAE_MAX_GENERATION_SECONDS (300 s).
DEFAULT_TIMEOUT = httpx.Timeout(330.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2
# A Retry-After longer than this is not waited for (a spent monthly quota says days): the
# error is raised with its `retry_after` for the caller to decide.
DEFAULT_MAX_RETRY_WAIT = 60.0
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Call(Generic[T]):
    """One logical request: what to send, and how its answer is read."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    timeout: float | httpx.Timeout | None = None
    max_retries: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_params(self, params: Mapping[str, Any]) -> Call[T]:
        return replace(self, params=params)


def unparsed(response: httpx.Response) -> httpx.Response:
    """For the calls read as pages or streams, which read their answers themselves."""
    return response


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    """Reads an answer as one `cls`, with the answer's information attached."""

    def parse(response: httpx.Response) -> M:
        return attach(cls.model_validate(response.json()), response)

    return parse


def model_list(cls: type[M]) -> Callable[[httpx.Response], ObjectList[M]]:
    """Reads an answer that is a JSON array of `cls`."""

    def parse(response: httpx.Response) -> ObjectList[M]:
        items: ObjectList[M] = ObjectList(cls.model_validate(item) for item in response.json())
        return attach(items, response)

    return parse


def deleted(id_: str) -> Callable[[httpx.Response], Deleted]:
    """Reads the answer of a delete (204, or the characters API's `{"success": true}`)."""

    def parse(response: httpx.Response) -> Deleted:
        return attach(Deleted(id=id_), response)

    return parse


def clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that were given (None means "not given" for the client's arguments)."""
    return {k: v for k, v in values.items() if v is not None}


class BaseClient:
    """Settings and decisions shared by `Personae` and `AsyncPersonae`."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | httpx.URL | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        max_retry_wait: float,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        api_key = api_key or os.environ.get("PERSONAE_API_KEY")
        if not api_key:
            raise PersonaeError(
                "No API key: pass api_key=... or set PERSONAE_API_KEY "
                "(an operator makes one with `personae accounts create`)"
            )
        self.api_key = api_key
        self.base_url = httpx.URL(
            str(base_url or os.environ.get("PERSONAE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
            + "/"
        )
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.default_headers = dict(default_headers or {})

    def with_options(
        self: C, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None
    ) -> C:
        """A copy of this client (same connections) with another timeout or retry count:
        `client.with_options(max_retries=0).chat.send(...)`."""
        clone = copy.copy(self)
        if timeout is not None:
            clone.timeout = timeout
        if max_retries is not None:
            clone.max_retries = max_retries
        clone._mount_resources()
        return clone

    def _mount_resources(self) -> None:
        raise NotImplementedError

    def _client_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"personae-python/{__version__}",
            **self.default_headers,
        }

    def _request_headers(self, call: Call[Any], idempotency_key: str | None) -> dict[str, str]:
        headers = dict(call.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    @staticmethod
    def _idempotency_key(call: Call[Any]) -> str | None:
        """One key per logical POST, kept across its retries so the work runs once."""
        if call.method != "POST":
            return None
        return call.idempotency_key or str(uuid.uuid4())

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], idempotency_key: str | None
    ) -> httpx.Request:
        return http.build_request(
            call.method,
            self.base_url.join(call.path.lstrip("/")),
            params=call.params,
            json=call.json,
            files=call.files,
            data=call.data,
            headers=self._client_headers() | self._request_headers(call, idempotency_key),
            timeout=self.timeout if call.timeout is None else call.timeout,
        )

    def _retry_delay(self, call: Call[Any], attempt: int, error: PersonaeError) -> float | None:
        """Seconds to wait before trying `call` again after `error`, or None to give up.

        Retried: connection errors, 429, 500/502/503/504, and a 409 saying the same
        Idempotency-Key's first request still runs. The wait is the answer's
        `Retry-After` when it has one (beyond `max_retry_wait`, no retry), else an
        exponential backoff with jitter.
        """
        retries = self.max_retries if call.max_retries is None else call.max_retries
        if attempt >= retries:
            return None
        if isinstance(error, APIStatusError):
            in_use = isinstance(error, ConflictError) and error.code == "idempotency_key_in_use"
            if error.status_code not in RETRY_STATUSES and not in_use:
                return None
            asked = retry_after_seconds(error.headers)
            if asked is not None:
                return asked if asked <= self.max_retry_wait else None
        elif not isinstance(error, APIConnectionError):
            return None
        backoff: float = min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF)
        return backoff * (1 - 0.25 * random.random())  # jitter: not all clients at once
