"""The errors the client raises: one class per kind of failure, as the OpenAI SDKs have.

Every error from the API is an `APIStatusError` (or one of its subclasses by status), read
from either dialect's error body: the agents API's `{"error": "message"}` and the characters
API's `{"error": {"code", "message", "status", "details"}}`. A request that never got an
answer is an `APIConnectionError` (`APITimeoutError` when it ran out of time).
"""

from __future__ import annotations

from typing import Any

import httpx

from personae.client._response import RateLimit, retry_after_seconds

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "PersonaeError",
    "RateLimitError",
    "WebhookVerificationError",
]

# The agents API's errors carry no code: these name its statuses as the characters API does.
_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "engine_timeout",
}


class PersonaeError(Exception):
    """The base of every error this client raises."""


class APIConnectionError(PersonaeError):
    """The request got no answer: the server could not be reached, or the connection broke."""

    def __init__(self, message: str = "Connection error", *, request: httpx.Request) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request ran out of time (the client's `timeout`)."""

    def __init__(self, *, request: httpx.Request) -> None:
        super().__init__("Request timed out", request=request)


class WebhookVerificationError(PersonaeError):
    """A webhook delivery whose signature, timestamp or headers do not check out."""


class APIStatusError(PersonaeError):
    """The API answered with an error status.

    `status_code`, `code` (the characters API's code, or one derived from the status for the
    agents API), `message`, `details`, `body` (the parsed body), `headers`, `rate_limit` and
    `request_id` say what was answered.
    """

    def __init__(
        self, message: str, *, response: httpx.Response, body: Any, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.status_code = status_code or response.status_code
        self.body = body
        self.headers = response.headers
        self.rate_limit = RateLimit.from_headers(response.headers)
        self.request_id = response.headers.get("x-request-id")
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            self.code: str = str(error.get("code") or _CODES.get(self.status_code, "error"))
            details = error.get("details")
            self.details: dict[str, Any] = details if isinstance(details, dict) else {}
        else:
            self.code = _CODES.get(self.status_code, "error")
            self.details = {}

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


class BadRequestError(APIStatusError):
    """400: the request was refused as it stands (a field out of bounds, an unknown id)."""


class AuthenticationError(APIStatusError):
    """401: no API key, or one the server does not know."""


class PaymentRequiredError(APIStatusError):
    """402: the account's balance cannot cover the request."""


class PermissionDeniedError(APIStatusError):
    """403: the account's plan does not include this, or the thing is someone else's."""


class NotFoundError(APIStatusError):
    """404: nothing there that this account may see."""


class ConflictError(APIStatusError):
    """409: an Idempotency-Key in use or reused, or a model no longer available."""


class RateLimitError(APIStatusError):
    """429: the per-minute limit, the monthly quota or a per-account cap.

    `retry_after` is the seconds the server asked to wait (`Retry-After`), or None.
    """

    def __init__(
        self, message: str, *, response: httpx.Response, body: Any, status_code: int | None = None
    ) -> None:
        super().__init__(message, response=response, body=body, status_code=status_code)
        self.retry_after = retry_after_seconds(response.headers)


class InternalServerError(APIStatusError):
    """5xx: the server or its engine failed, or is busy."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_from_body(response: httpx.Response, body: Any) -> APIStatusError:
    """The typed error for an error answer whose body has been parsed (or is None).

    An `error` event in a stream came with a 200: its status is the one the characters API
    puts in its body; the agents API's body has none, and the error is a plain
    `APIStatusError` with the stream's status.
    """
    error = body.get("error") if isinstance(body, dict) else None
    status = response.status_code
    if isinstance(error, dict) and isinstance(error.get("status"), int):
        status = error["status"]
    if isinstance(error, dict):
        message = str(error.get("message") or response.reason_phrase)
    elif isinstance(error, str):
        message = error
    else:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = InternalServerError if status >= 500 else APIStatusError
    return kind(message, response=response, body=body, status_code=status)


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed error for a (read) error answer."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or None
    return error_from_body(response, body)


def transport_error(exc: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    """The error for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(request=request)
    return APIConnectionError(str(exc) or type(exc).__name__, request=request)
