"""Per-account request limits by plan, on the `limits` library."""

from personae.ratelimit.limiter import RateLimiter, RateLimitResult

__all__ = ["RateLimitResult", "RateLimiter"]
