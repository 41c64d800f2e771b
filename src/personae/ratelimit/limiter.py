"""A moving one-minute window per account, in memory or in Redis.

A moving window (not a fixed one) so that no burst of twice the limit can straddle a
minute boundary; with Redis the window lives in one sorted set per account, so every
server process sharing that Redis shares the limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from personae.errors import RateLimited, ServiceUnavailable

KEY_PREFIX = "personae-rl"


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


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.storage: Storage
        self._pool: ConnectionPool | None = None
        if redis_url:
            # We own the pool so that it can be closed with the app.
            self._pool = ConnectionPool.from_url(
                redis_url, socket_timeout=5, socket_connect_timeout=5
            )
            self.storage = RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]  # limits passes it on to redis
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, subject: str, per_minute: int) -> RateLimitResult:
        """Count one request for `subject`; tell whether it is within `per_minute`."""
        item = RateLimitItemPerMinute(per_minute)
        try:
            allowed = await self.strategy.hit(item, subject)
            stats = await self.strategy.get_window_stats(item, subject)
        except StorageError as exc:
            raise ServiceUnavailable("Rate limit storage is unavailable") from exc
        return RateLimitResult(allowed, per_minute, stats.remaining, stats.reset_time)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
