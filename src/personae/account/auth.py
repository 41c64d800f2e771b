"""API key → account on every request, without a database round trip on the hot path.

A verified key is remembered with its account for a few seconds (`ttl`). A change that
must take effect at once (a key revoked, a plan or a per-account limit changed, a top-up)
is announced once its transaction commits, and every process forgets what it remembered:

* in the announcing process, at once;
* in the other processes on this machine, at their next request: the announcement
  rewrites `DATA_DIR/auth-epoch`, which each request checks with one `stat` (a few
  microseconds, no I/O wait);
* in processes on other machines, through Redis pub/sub when `PERSONAE_REDIS_URL` is set
  (and within `ttl` when it is not, or while Redis is unreachable).

Forgetting everything, not one account, keeps the announcement simple and is cheap: these
changes are operator actions, rare next to requests. The accounts remembered are detached
ORM rows shared by concurrent requests, so they are read-only: anything that changes
often (the balance, usage) is read from the database by whoever needs it.

A key's `last_used_at` is recorded at most once a minute per key (`LAST_USED_RESOLUTION`),
and written in batches off the request path (`flush_uses`, every few seconds and at
shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.account.repository import AccountRepository
from personae.account.service import AccountService
from personae.db.base import utcnow
from personae.models import Account

log = logging.getLogger("personae")

CHANNEL = "personae:auth-changed"
LAST_USED_RESOLUTION = timedelta(minutes=1)
FLUSH_SECONDS = 5.0
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Entry:
    key_id: str
    account: Account
    expires: float  # time.monotonic()


def _pristine(account: Account) -> bool:
    """Still detached and whole. A cached row that some code attached to its session (by
    assigning it to a relationship that cascades) is expired by that session's rollback,
    for every request sharing it; it is then looked up again, and the bug is logged."""
    state = inspect(account)
    if state.session_id is None and not state.expired_attributes:
        return True
    log.error("a cached account was attached to a session; see personae.account.auth")
    return False


def _digest(presented: str) -> bytes:
    # The cache is keyed by a digest, so a memory dump does not hold the keys themselves.
    return hashlib.sha256(presented.encode()).digest()


class Authenticator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl_seconds: float,
        epoch_file: Path,
        redis_url: str | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.ttl = ttl_seconds
        self.epoch_file = epoch_file
        self.redis_url = redis_url
        self._entries: dict[bytes, Entry] = {}
        self._epoch = self._read_epoch()
        self._used: dict[str, datetime] = {}  # key id -> the last use recorded or pending
        self._pending: dict[str, datetime] = {}  # key id -> a use not yet written
        self._publishes: set[asyncio.Task[None]] = set()

    # the request path
    async def account(self, presented: str) -> Account:
        """The account of a live key, or Unauthorized (every failure looks the same)."""
        digest = _digest(presented)
        now = time.monotonic()
        epoch = self._read_epoch()
        if epoch != self._epoch:
            self._epoch = epoch
            self._entries.clear()
        entry = self._entries.get(digest)
        if entry is None or entry.expires <= now or not _pristine(entry.account):
            entry = await self._verify(presented, digest, now)
        self._note_use(entry.key_id)
        return entry.account

    async def _verify(self, presented: str, digest: bytes, now: float) -> Entry:
        async with self.sessionmaker() as session:
            key = await AccountService(session).authenticate(presented)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))  # the oldest
        entry = Entry(key.id, key.account, now + self.ttl)
        self._entries[digest] = entry
        if key.last_used_at is not None:
            self._used.setdefault(key.id, key.last_used_at)
        return entry

    def _read_epoch(self) -> tuple[int, int]:
        try:
            stat = os.stat(self.epoch_file)
        except OSError:
            return (0, 0)
        return (stat.st_ino, stat.st_mtime_ns)

    def _note_use(self, key_id: str) -> None:
        now = utcnow()
        last = self._used.get(key_id)
        if last is None or now - last >= LAST_USED_RESOLUTION:
            self._used[key_id] = now
            self._pending[key_id] = now

    async def flush_uses(self) -> None:
        """Write the pending `last_used_at` values, in one transaction."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            async with self.sessionmaker.begin() as session:
                await AccountRepository(session).touch_keys(pending)
        except Exception:
            for key_id, when in pending.items():  # tried again at the next flush
                self._pending.setdefault(key_id, when)
            raise

    # announcements
    def forget(self) -> None:
        self._entries.clear()

    def announce(self) -> None:
        """Accounts or keys changed (committed): every process forgets what it remembered.
        Called by `personae.account.changes.announce_after_commit`."""
        self.forget()
        # A new file each time, not a touch: its inode changes even where the file system
        # keeps modification times too coarse to tell two announcements apart.
        self.epoch_file.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.epoch_file.with_name(f"{self.epoch_file.name}.{os.getpid()}")
        fresh.touch()
        os.replace(fresh, self.epoch_file)
        self._epoch = self._read_epoch()
        if self.redis_url:
            task = asyncio.get_running_loop().create_task(self._publish())
            self._publishes.add(task)
            task.add_done_callback(self._publishes.discard)

    async def _publish(self) -> None:
        assert self.redis_url is not None
        try:
            async with Redis.from_url(self.redis_url, socket_timeout=5) as redis:
                await redis.publish(CHANNEL, b"*")
        except Exception:  # the other machines' caches then expire within the TTL
            log.exception("could not announce an account change through Redis")

    async def run_forever(self) -> None:
        """Write key uses every few seconds and, with Redis, forget on announcements."""
        listen = asyncio.create_task(self._listen_forever()) if self.redis_url else None
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                try:
                    await self.flush_uses()
                except Exception:
                    log.exception("could not record API key uses")
        finally:
            if listen is not None:
                listen.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listen

    async def _listen_forever(self) -> None:
        assert self.redis_url is not None
        while True:
            try:
                async with Redis.from_url(self.redis_url) as redis, redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    # Whatever was announced while this process was not listening.
                    self.forget()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.forget()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lost the account-change channel in Redis; retrying in 1 s")
                self.forget()
                await asyncio.sleep(1)

    async def close(self) -> None:
        """Write what is pending and finish the announcements under way."""
        if self._publishes:
            await asyncio.gather(*self._publishes, return_exceptions=True)
        try:
            await self.flush_uses()
        except Exception:
            log.exception("could not record API key uses at shutdown")
