"""The one error hierarchy. Services raise these; each dialect renders them in its own shape."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from personae.timestamps import format_timestamp


class PersonaeError(Exception):
    """An error the API reports to its caller.

    `code` is the characters API's error code; `message` is shown in both dialects.
    `headers` are added to the HTTP response (e.g. ``Retry-After``).
    """

    status: int = 500
    code: str = "server_error"
    default_message: str = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(PersonaeError):
    status, code, default_message = 400, "invalid_request", "Invalid request"


# RFC 9110: a 401 names how to authenticate. Both dialects take `Bearer KEY` (and the
# `X-API-Key` header, which has no registered scheme to name).
AUTH_CHALLENGE = 'Bearer realm="personae"'


class Unauthorized(PersonaeError):
    status, code, default_message = 401, "unauthorized", "No valid API key was provided"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            message,
            details=details,
            headers={"WWW-Authenticate": AUTH_CHALLENGE, **(headers or {})},
        )


class PaymentRequired(PersonaeError):
    status, code, default_message = 402, "payment_required", "Insufficient account balance"


class Forbidden(PersonaeError):
    status, code, default_message = 403, "forbidden", "Not allowed"


class SubscriptionRequired(Forbidden):
    code = "subscription_required"
    default_message = "This endpoint requires a Standard or higher subscription plan"


class PremiumRequired(Forbidden):
    code = "premium_required"
    default_message = "This endpoint requires a Premium or Enterprise subscription plan"


class NotFound(PersonaeError):
    status, code, default_message = 404, "not_found", "The requested resource doesn't exist"


class MethodNotAllowed(PersonaeError):
    status, code, default_message = 405, "method_not_allowed", "Method not allowed"


class Conflict(PersonaeError):
    status, code, default_message = 409, "conflict", "Conflict"


class ModelUnavailable(Conflict):
    code, default_message = "model_unavailable", "The conversation's model is no longer offered"


class IdempotencyKeyReused(Conflict):
    """The key was used, by the same account, for a request with another path or body."""

    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used for a different request"


class IdempotencyKeyInUse(Conflict):
    """A request with the same key is still running; the retry did not start."""

    code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed"


class PayloadTooLarge(PersonaeError):
    status, code, default_message = 413, "payload_too_large", "Request body too large"


class UnsupportedMediaType(PersonaeError):
    status, code, default_message = 415, "unsupported_media_type", "Unsupported media type"


class RateLimited(PersonaeError):
    status, code, default_message = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(PersonaeError):
    status, code, default_message = 503, "service_unavailable", "Service unavailable"


class EngineFailed(PersonaeError):
    """The model engine answered with an error (e.g. a 5xx)."""

    status, code, default_message = 502, "engine_error", "The model engine failed"


class EngineUnavailable(PersonaeError):
    """The model engine could not be reached or loaded."""

    status, code, default_message = 503, "engine_unavailable", "The model engine is unavailable"


class EngineBusy(EngineUnavailable):
    """Every sequence the engine decodes at once is taken and its queue is full."""

    code, default_message = "engine_busy", "The model engine is at capacity; try again shortly"


class EngineTimeout(PersonaeError):
    status, code, default_message = 504, "engine_timeout", "The model engine timed out"


class QuotaExceeded(RateLimited):
    default_message = "Monthly chat request quota exhausted"

    def __init__(self, limit: int, reset: datetime, now: datetime) -> None:
        """`reset`: when the quota renews (the next month's start, UTC). Like every 429 it
        carries `Retry-After`: the seconds until then."""
        reset_date = format_timestamp(reset)
        super().__init__(
            f"Monthly chat request quota of {limit} exhausted; it resets {reset_date}",
            details={"limit": "monthly_chat_requests", "quota": limit, "reset_date": reset_date},
            headers={"Retry-After": str(max(1, math.ceil((reset - now).total_seconds())))},
        )


class CapReached(RateLimited):
    """The account already has as many of something as a per-account cap allows
    (`account/caps.py`); `details.limit` names the cap."""

    def __init__(
        self, message: str, *, limit: str, most: int, setting: str, retry_after: int
    ) -> None:
        super().__init__(
            message,
            details={"limit": limit, "max": most, "setting": setting},
            headers={"Retry-After": str(retry_after)},
        )


class HeadersTooLarge(PersonaeError):
    status, code = 431, "request_header_fields_too_large"
    default_message = "Request headers too large"
