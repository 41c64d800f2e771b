"""A moving one-minute window per account, in memory or in Redis, checked in one step.

A moving window (not a fixed one) so that no burst of twice the limit can straddle a
minute boundary; with Redis the window lives in one sorted set per account, so every
server process sharing that Redis shares the limit.

The check is on every request's path, so it costs one step: in memory a plain function
(no await), in Redis one script call that counts, admits and reports the window at once.
The `limits` package, used before, needs two round trips for that (`hit`, then
`get_window_stats` for the headers) and awaits even in memory; the window itself is the
same algorithm.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from itertools import count

from redis.asyncio import Redis
from redis.exceptions import RedisError

from personae.errors import RateLimited, ServiceUnavailable

KEY_PREFIX = "personae-rl2"
WINDOW_SECONDS = 60.0

# KEYS[1]: the account's window; ARGV: now (s), window (s), limit, a unique member.
# Returns {admitted (0/1), requests in the window, the oldest one's time (s) as a string}.
_MOVING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local admitted = 0
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  used = used + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {admitted, used, oldest[2] or ARGV[1]}
"""


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_time: float  # epoch seconds when the oldest request in the window leaves it

    @property
    def reset_at(self) -> int:
        return math.ceil(self.reset_time)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }

    def error(self) -> RateLimited:
        retry_after = max(1, math.ceil(self.reset_time - time.time()))
        return RateLimited(
            f"Rate limit of {self.limit} requests per minute exceeded",
            details={"limit": "requests_per_minute", "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class MemoryWindows:
    """The windows of one process: per subject, the times of its admitted requests."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}

    def hit(self, subject: str, limit: int, now: float) -> RateLimitResult:
        window = self._windows.setdefault(subject, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        allowed = len(window) < limit
        if allowed:
            window.append(now)
        oldest = window[0] if window else now
        return RateLimitResult(allowed, limit, limit - len(window), oldest + WINDOW_SECONDS)

    def sweep(self, now: float) -> None:
        """Forget subjects whose window has emptied (called now and then, not per hit)."""
        stale = [s for s, w in self._windows.items() if not w or w[-1] <= now - WINDOW_SECONDS]
        for subject in stale:
            del self._windows[subject]


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self._redis: Redis | None = None
        self._memory = MemoryWindows()
        self._hits = count()
        if redis_url:
            self._redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
            self._script = self._redis.register_script(_MOVING_WINDOW)
            # Unique members for requests admitted in the same microsecond, across processes.
            self._instance = uuid.uuid4().hex[:12]

    async def hit(self, subject: str, per_minute: int) -> RateLimitResult:
        """Count one request for `subject`; tell whether it is within `per_minute`."""
        now = time.time()
        if self._redis is None:
            if next(self._hits) % 10_000 == 0:
                self._memory.sweep(now)
            return self._memory.hit(subject, per_minute, now)
        member = f"{now:.6f}:{self._instance}:{next(self._hits)}"
        try:
            admitted, used, oldest = await self._script(
                keys=[f"{KEY_PREFIX}:{subject}"], args=[now, WINDOW_SECONDS, per_minute, member]
            )
        except RedisError as exc:
            raise ServiceUnavailable("Rate limit storage is unavailable") from exc
        return RateLimitResult(
            bool(admitted), per_minute, max(0, per_minute - int(used)),
            float(oldest) + WINDOW_SECONDS,
        )  # fmt: skip

    async def reachable(self) -> bool | None:
        """Whether Redis answers a PING (None: no Redis configured)."""
        if self._redis is None:
            return None
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
