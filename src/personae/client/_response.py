"""What every answer carries besides its body: status, headers, rate-limit figures."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, PrivateAttr

T = TypeVar("T")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`Retry-After` in seconds, from either of its forms (seconds, or an HTTP date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RateLimit:
    """The per-minute limit as the answer stated it (`X-RateLimit-*`); None where absent.

    `reset` is the epoch second at which the window restarts.
    """

    limit: int | None
    remaining: int | None
    reset: int | None

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimit:
        return cls(
            limit=_int(headers.get("x-ratelimit-limit")),
            remaining=_int(headers.get("x-ratelimit-remaining")),
            reset=_int(headers.get("x-ratelimit-reset")),
        )


@dataclass(frozen=True)
class ResponseInfo:
    """The HTTP answer a result came from."""

    status_code: int
    headers: httpx.Headers
    rate_limit: RateLimit
    request_id: str | None

    @classmethod
    def of(cls, response: httpx.Response) -> ResponseInfo:
        return cls(
            status_code=response.status_code,
            headers=response.headers,
            rate_limit=RateLimit.from_headers(response.headers),
            request_id=response.headers.get("x-request-id"),
        )


class APIObject(BaseModel):
    """A resource as the API answered it.

    Fields the client does not name yet are kept (`model_extra`) and readable as attributes,
    so a newer server never breaks an older client. `response` and `rate_limit` tell the HTTP
    answer the object came from (None for objects nested in another).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    _response: ResponseInfo | None = PrivateAttr(default=None)

    @property
    def response(self) -> ResponseInfo | None:
        """The HTTP answer this object came from."""
        return self._response

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the answer this object came from."""
        return self._response.rate_limit if self._response else None


A = TypeVar("A")


def attach(value: A, response: httpx.Response) -> A:
    """`value` with the answer's information attached, where it can hold it."""
    if isinstance(value, APIObject):
        value._response = ResponseInfo.of(response)
    elif isinstance(value, ObjectList):
        value.response = ResponseInfo.of(response)
    return value


class ObjectList(list[T], Generic[T]):
    """A list answered whole (the models), with the answer's information."""

    response: ResponseInfo | None = None

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the answer this list came from."""
        return self.response.rate_limit if self.response else None
