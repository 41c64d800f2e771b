"""Per-account caps on what an account keeps or has waiting: characters, conversations,
webhooks, and image jobs not yet finished. Each is a setting (`PERSONAE_MAX_…`).

An account at a cap gets 429 `rate_limited` (the monthly quota's status and code), with
`details.limit` naming the cap, `details.max` its value and `details.setting` the setting,
and a `Retry-After`: for queued images the time a job usually takes, since finishing jobs
free places; for the others an hour, since only deleting something does.

A cap holds under concurrency: `CapCheck.enforce` locks the account's row (a no-op UPDATE:
the lock order's step 2, account/billing.py) before it counts, and the caller inserts in
the same transaction. Two requests of one account creating at once therefore count one
after the other (on PostgreSQL the second waits for the first's row lock and its count, in
READ COMMITTED, sees the first's row; on SQLite the UPDATE takes the database's write lock,
which has the same effect), so a cap is never exceeded, not even by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.repository import AccountRepository
from personae.errors import CapReached

if TYPE_CHECKING:
    from personae.config import Settings


@dataclass(frozen=True)
class Cap:
    """One kind of cap: its name in `details.limit`, its setting, and what the message says."""

    limit: str
    setting: str
    noun: str
    remedy: str
    retry_after: int


CHARACTERS = Cap(
    "characters_per_account",
    "PERSONAE_MAX_CHARACTERS_PER_ACCOUNT",
    "characters",
    "delete one to create another",
    3600,
)
CONVERSATIONS = Cap(
    "conversations_per_account",
    "PERSONAE_MAX_CONVERSATIONS_PER_ACCOUNT",
    "conversations",
    "delete one to start another",
    3600,
)
WEBHOOKS = Cap(
    "webhooks_per_account",
    "PERSONAE_MAX_WEBHOOKS_PER_ACCOUNT",
    "webhooks",
    "delete one to register another",
    3600,
)
QUEUED_IMAGES = Cap(
    "queued_images_per_account",
    "PERSONAE_MAX_QUEUED_IMAGES_PER_ACCOUNT",
    "image jobs pending or running",
    "wait for one to finish",
    10,
)


@dataclass(frozen=True)
class AccountCaps:
    """The caps' values, from the settings."""

    characters: int
    conversations: int
    webhooks: int
    queued_images: int

    @classmethod
    def of(cls, settings: Settings) -> AccountCaps:
        return cls(
            characters=settings.max_characters_per_account,
            conversations=settings.max_conversations_per_account,
            webhooks=settings.max_webhooks_per_account,
            queued_images=settings.max_queued_images_per_account,
        )


class CapCheck:
    """Checks a cap inside the transaction that is about to add one more."""

    def __init__(self, session: AsyncSession) -> None:
        self.accounts = AccountRepository(session)

    async def enforce(
        self, account_id: str, cap: Cap, most: int, count: Callable[[], Awaitable[int]]
    ) -> None:
        """Lock the account's row, then 429 if `count()` (what the account has now) is
        already `most`. The row stays locked until the transaction ends, so call this
        right before the insert it guards, with no network call in between."""
        await self.accounts.lock(account_id)
        held = await count()
        if held >= most:
            raise CapReached(
                f"The account has {held} {cap.noun}, the most allowed ({cap.setting}="
                f"{most}): {cap.remedy}",
                limit=cap.limit,
                most=most,
                setting=cap.setting,
                retry_after=cap.retry_after,
            )
