"""Idempotency keys: a retried POST gets the first answer back instead of running again.

A key belongs to an account. The first request with it *claims* it by inserting its row
`running` (the primary key makes the insert the lock, on SQLite and PostgreSQL alike); a
retry that arrives meanwhile finds the row and is refused with 409, without starting the
work. A request that succeeds *completes* the row with its response, which every later
request with the same key and the same fingerprint gets back; one with another
fingerprint is 409. A request that fails *releases* the row (deletes it), so the key can be
used again: in Personae an error leaves no work behind (its transaction rolled back, its
turn released), and a retry after a 503 or a top-up should run.

A row stays claimed only while its request lives. One whose server process stopped
beating (conversation/turns.py), or whose request this process no longer runs, is
abandoned and the next request with the key takes it over; so does one past its expiry.
A takeover is a compare-and-swap on the row's `claim`, so of two, one wins.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.conversation.turns import MISSED_BEATS
from personae.db.base import utcnow
from personae.db.session import Writer
from personae.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidRequest
from personae.idempotency.repository import IdempotencyRepository
from personae.ids import new_id
from personae.models import IdempotencyKey

log = logging.getLogger("personae")

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
# Printable ASCII: what every HTTP stack carries unchanged (a UUID, a hash, a counter).
_KEY_RE = re.compile(rf"[\x20-\x7e]{{1,{KEY_MAX_LENGTH}}}")
RUNNING, COMPLETED = "running", "completed"
#: tries to claim a key whose row another request changes at the same moment
_CLAIM_TRIES = 3
SWEEP_SECONDS = 3600


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Claimed:
    """A key this request holds: it runs the work, then completes or releases the key."""

    account_id: str
    key: str
    claim: str


def check_key(key: str) -> None:
    if not _KEY_RE.fullmatch(key):
        raise InvalidRequest(
            f"{HEADER}: 1 to {KEY_MAX_LENGTH} printable ASCII characters",
            details={"header": HEADER, "max_length": KEY_MAX_LENGTH},
        )


class IdempotencyKeys:
    """The keys of this process's requests (one per process, on the app's state)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        writer: Writer,
        instance_id: str,
        heartbeat_seconds: float,
        ttl: timedelta,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.writer = writer
        self.instance_id = instance_id
        self.heartbeat_seconds = heartbeat_seconds
        self.ttl = ttl
        # Claims held by requests running in this process. A row of this instance's whose
        # claim is not here was left behind (its release failed) and may be taken over.
        self._live: set[str] = set()

    async def begin(
        self, account_id: str, key: str, fingerprint: str, request: str
    ) -> Claimed | StoredResponse:
        """Claim the key for this request, or the response a request with it produced.
        `fingerprint` tells requests apart; `request` ("for POST /v1/…") names this one in
        the message that a retry with another request gets.

        Raises InvalidRequest for a malformed key, IdempotencyKeyReused if the key went
        with another request, IdempotencyKeyInUse while a request with it is running."""
        check_key(key)
        for _ in range(_CLAIM_TRIES):
            now = utcnow()
            claim = new_id("idem")
            values: dict[str, Any] = {
                "claim": claim,
                "fingerprint": fingerprint,
                "request": request,
                "state": RUNNING,
                "instance_id": self.instance_id,
                "status_code": None,
                "response_headers": None,
                "response_body": None,
                "created_at": now,
                "expires_at": now + self.ttl,
            }
            # Live before the claim commits, so that no request of this process can see
            # the row and take it for abandoned.
            self._live.add(claim)
            outcome: Claimed | StoredResponse | None = None
            committed = False
            try:
                async with self.writer.begin() as session:
                    repo = IdempotencyRepository(session)
                    outcome = await self._claim(repo, account_id, key, values, now)
                committed = True
            finally:
                if not (committed and isinstance(outcome, Claimed)):
                    self._live.discard(claim)
            if outcome is not None:
                return outcome
        raise in_use()  # every try lost a race to requests changing the row

    async def _claim(
        self,
        repo: IdempotencyRepository,
        account_id: str,
        key: str,
        values: dict[str, Any],
        now: datetime,
    ) -> Claimed | StoredResponse | None:
        """One try: the claim, the stored response, or None if the row changed under it."""
        if await repo.insert({"account_id": account_id, "key": key} | values):
            return Claimed(account_id, key, values["claim"])
        row = await repo.get(account_id, key)
        if row is None:
            return None  # released a moment ago
        if row.expires_at <= now or await self._abandoned(repo, row, now):
            if await repo.replace(account_id, key, row.claim, values):
                return Claimed(account_id, key, values["claim"])
            return None  # another request took it over first
        if row.fingerprint != values["fingerprint"]:
            used = "with another body" if row.request == values["request"] else row.request
            raise IdempotencyKeyReused(
                f"This {HEADER} was already used {used}; send a new key for a new request",
                details={"header": HEADER},
            )
        if row.state == RUNNING:
            raise in_use()
        assert row.status_code is not None, "a completed row has its response"
        assert row.response_body is not None
        headers = [(name, value) for name, value in row.response_headers or []]
        return StoredResponse(row.status_code, headers, row.response_body)

    async def _abandoned(
        self, repo: IdempotencyRepository, row: IdempotencyKey, now: datetime
    ) -> bool:
        if row.state != RUNNING:
            return False
        if row.instance_id == self.instance_id:
            return row.claim not in self._live
        live_since = now - timedelta(seconds=self.heartbeat_seconds * MISSED_BEATS)
        return not await repo.instance_alive(row.instance_id, live_since)

    async def complete(self, claimed: Claimed, response: StoredResponse) -> None:
        """Store the response that retries with this key get back. If this fails, the
        claim stays live: retries are refused (409) until the key expires or this process
        stops, rather than run the work a second time."""
        async with self.writer.begin() as session:
            stored = await IdempotencyRepository(session).replace(
                claimed.account_id,
                claimed.key,
                claimed.claim,
                {
                    "state": COMPLETED,
                    "status_code": response.status,
                    "response_headers": [list(pair) for pair in response.headers],
                    "response_body": response.body,
                },
            )
        self._live.discard(claimed.claim)
        if not stored:  # it expired and was taken over, or swept, while this one ran
            log.warning("an idempotency key's row was gone when its response was stored")

    async def release(self, claimed: Claimed) -> None:
        """Free the key: the request did no work, and a retry with the key may run."""
        try:
            async with self.writer.begin() as session:
                await IdempotencyRepository(session).delete(
                    claimed.account_id, claimed.key, claimed.claim
                )
        finally:
            self._live.discard(claimed.claim)

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete the expired keys; how many."""
        async with self.writer.begin() as session:
            return await IdempotencyRepository(session).delete_expired(now or utcnow())

    async def sweep_forever(self, interval: float = SWEEP_SECONDS) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not end the loop; the next try may work
                log.exception("sweeping expired idempotency keys failed")
            await asyncio.sleep(interval)


def in_use() -> IdempotencyKeyInUse:
    return IdempotencyKeyInUse(
        f"A request with this {HEADER} is still being processed; retry once it has finished",
        details={"header": HEADER},
        headers={"Retry-After": "1"},
    )
