"""The one home of money: a hold on the month's chat quota and on the balance, then either
settled (the price charged, the rest given back) or released (all of it given back).

Chat turns and image jobs alike go through here, and so do the rows' locks. **The lock
order** of every transaction that touches several of these rows, everywhere in Personae:

0. a reservation's own record (`chat_turns`, `images`), when it is settled or released:
   claimed first, by a conditional update of its status, so that it is settled or released
   exactly once and two transactions about it queue on it before touching anything else;
1. `monthly_usage` (the account's month), then its `usage_ledger` row (day, kind, model),
2. `accounts` (the balance),
3. `conversations`, then `messages`,
4. `characters`, then their `character_tags` (the catalogue's copies), then
   `catalogue_counts` (in tag order), then `character_activity`,
5. new rows: a turn's or job's record, the webhook outbox.

A transaction takes only the locks it needs, in this order; reads come first and lock
nothing. Two transactions therefore never wait on each other in a cycle, on PostgreSQL
(row locks) as on SQLite (which serialises writers anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.repository import AccountRepository
from personae.account.service import ledger_day, month_period, next_month_start
from personae.db.base import utcnow
from personae.errors import PaymentRequired, QuotaExceeded
from personae.models import Account
from personae.observability import metrics


@dataclass(frozen=True)
class Hold:
    """What a reservation took: one chat request of `period` (if `chat_request`) and
    `micros` of the balance."""

    account_id: str
    period: str
    chat_request: bool
    micros: int

    @classmethod
    def balance_only(cls, account_id: str, micros: int) -> Hold:
        """A hold on the balance alone (an image's price)."""
        return cls(account_id, "", False, micros)


@dataclass(frozen=True)
class Consumption:
    """What a chat turn used, written to the usage ledger when it is settled."""

    model_id: str
    prompt_tokens: int
    completion_tokens: int


class Billing:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = AccountRepository(session)

    async def hold(
        self,
        account: Account,
        micros: int,
        *,
        chat_request: bool,
        model_id: str | None = None,
        now: datetime | None = None,
    ) -> Hold:
        """Take one chat request from the month's quota (429 past it) and `micros` from the
        balance (402 if it cannot pay), each by a conditional update: two concurrent
        requests cannot both spend the last unit."""
        now = now or utcnow()
        period = month_period(now)
        if chat_request:
            quota = account.effective_chat_quota
            if not await self.repo.reserve_chat_request(account.id, period, quota):
                metrics.REFUSALS.labels("quota").inc()
                raise QuotaExceeded(quota, next_month_start(now), now)
        if micros and not await self.repo.take_balance(account.id, micros):
            metrics.REFUSALS.labels("balance").inc()
            details: dict[str, object] = {"required": micros / 1_000_000}
            if model_id:
                details["model"] = model_id
            raise PaymentRequired("Insufficient account balance", details=details)
        return Hold(account.id, period, chat_request, micros)

    async def settle(
        self,
        hold: Hold,
        charged_micros: int,
        consumption: Consumption,
        now: datetime | None = None,
    ) -> int:
        """Charge a chat turn what it used (never more than was held); the rest goes back.
        The turn is added to the usage ledger (one request, its tokens, the charge) of the
        day of `now`, before the balance moves (the lock order)."""
        charged = min(charged_micros, hold.micros)
        await self.repo.record_usage(
            hold.account_id,
            ledger_day(now or utcnow()),
            "chat",
            consumption.model_id,
            requests=1,
            prompt_tokens=consumption.prompt_tokens,
            completion_tokens=consumption.completion_tokens,
            cost_micros=charged,
        )
        if hold.micros - charged:
            await self.repo.add_balance(hold.account_id, hold.micros - charged)
        return charged

    async def release(self, hold: Hold) -> None:
        """Give everything back: the chat request, then the balance (the lock order)."""
        if hold.chat_request:
            await self.repo.release_chat_request(hold.account_id, hold.period)
        if hold.micros:
            await self.repo.add_balance(hold.account_id, hold.micros)

    async def record_image(
        self, account_id: str, model_id: str, cost_micros: int, now: datetime | None = None
    ) -> None:
        """Add a finished image to the usage ledger of the day of `now`: one request of
        `model_id`, no tokens, its price (taken from the balance when it was ordered). Call
        it in the transaction that completes the image, after claiming the image's row."""
        await self.repo.record_usage(
            account_id,
            ledger_day(now or utcnow()),
            "image",
            model_id,
            requests=1,
            prompt_tokens=0,
            completion_tokens=0,
            cost_micros=cost_micros,
        )
