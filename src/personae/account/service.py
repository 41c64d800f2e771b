"""Rules about accounts, keys and plans. Services flush but never commit: the caller's
unit of work (the request, a CLI command) decides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from personae.account import keys
from personae.account.changes import announce_after_commit
from personae.account.money import to_micros
from personae.account.plans import DEFAULT_PLANS, CharactersApi
from personae.account.repository import AccountRepository
from personae.db.base import utcnow
from personae.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from personae.ids import new_id
from personae.models import Account, ApiKey, Plan

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Credentials:
    account: Account
    key: ApiKey
    plaintext: str


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int
    reset_date: datetime


@dataclass(frozen=True)
class AccountSummary:
    balance_micros: int
    usage: Usage
    characters_created: int
    conversations: int
    favorites: int


@dataclass(frozen=True)
class UsageLine:
    """What an account used of one model, of one kind ("chat" or "image"), in a period."""

    kind: str
    model_id: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int


@dataclass(frozen=True)
class DayLine:
    """What an account used on one day (UTC, "YYYY-MM-DD"), every kind and model together;
    `tokens` is prompt and completion tokens."""

    day: str
    requests: int
    tokens: int
    cost_micros: int


@dataclass(frozen=True)
class UsageReport:
    """An account's calendar month (UTC) so far, from the usage ledger: `period` ("YYYY-MM");
    the month's chat requests against the quota (as `GET /v1/user/me` counts them: reserved
    when a turn starts) and when they reset; the balance; the usage per model, dearest first;
    and every day of the month up to today, oldest first (days without use are zeros)."""

    period: str
    chat_requests: int
    chat_quota: int
    reset_date: datetime
    balance_micros: int
    by_model: list[UsageLine]
    by_day: list[DayLine]


def month_period(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


def ledger_day(now: datetime) -> str:
    """The usage ledger's day of `now`: "YYYY-MM-DD" in UTC."""
    return now.astimezone(UTC).date().isoformat()


def next_month_start(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def parse_amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidRequest(f"amount: not a number: {text!r}") from exc
    if not amount.is_finite():
        raise InvalidRequest("amount: must be finite")
    return amount


class AccountService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = AccountRepository(session)

    async def ensure_default_plans(self) -> None:
        """Insert the contract's default plans that are missing; never overwrite an edit."""
        for plan in DEFAULT_PLANS:
            if await self.repo.get_plan(plan.name) is None:
                await self.repo.add(
                    Plan(
                        name=plan.name,
                        requests_per_minute=plan.requests_per_minute,
                        chat_requests_per_month=plan.chat_requests_per_month,
                        characters_api=plan.characters_api,
                        webhooks=plan.webhooks,
                    )
                )

    async def _plan(self, name: str) -> Plan:
        plan = await self.repo.get_plan(name)
        if plan is None:
            known = ", ".join(p.name for p in await self.repo.list_plans())
            raise InvalidRequest(f"plan: unknown plan {name!r} (known: {known})")
        return plan

    async def create_account(
        self,
        username: str,
        email: str | None = None,
        plan: str = "free",
        balance: Decimal = Decimal(0),
        *,
        admin: bool = False,
    ) -> Credentials:
        """A new account and its first API key (the plaintext is returned only here)."""
        account = await self.new_account(username, email, plan, balance, admin=admin)
        return await self.create_key(account)

    async def new_account(
        self,
        username: str,
        email: str | None = None,
        plan: str = "free",
        balance: Decimal = Decimal(0),
        *,
        admin: bool = False,
    ) -> Account:
        """A new account without a key (the console's sign-up: keys are made there)."""
        if not USERNAME_RE.match(username):
            raise InvalidRequest("username: 3 to 32 letters, digits, '_', '.' or '-'",
                                 details={"field": "username"})  # fmt: skip
        if email is not None and (len(email) > 254 or not EMAIL_RE.match(email)):
            raise InvalidRequest(f"email: not an email address: {email!r}",
                                 details={"field": "email"})  # fmt: skip
        if balance < 0:
            raise InvalidRequest("balance: must not be negative")
        if taken := await self.repo.username_or_email_taken(username, email):
            raise Conflict(f"{taken}: already in use", details={"field": taken})
        plan_row = await self._plan(plan)
        account = Account(
            id=new_id("user"),
            username=username,
            email=email,
            plan_name=plan_row.name,
            balance_micros=to_micros(balance),
            created_at=utcnow(),
            is_admin=admin,
        )
        account.plan = plan_row
        try:
            await self.repo.add(account)
        except IntegrityError as exc:  # the same name or email, taken a moment ago
            raise Conflict("username or email: already in use") from exc
        return account

    async def set_admin(self, account: Account, admin: bool) -> Account:
        account.is_admin = admin
        await self.repo.session.flush()
        announce_after_commit(self.repo.session)
        return account

    async def get(self, ref: str) -> Account:
        account = await self.repo.get_by_id_or_username(ref)
        if account is None:
            raise NotFound(f"no account {ref!r}")
        return account

    async def list(self, offset: int = 0, limit: int = 100) -> Sequence[Account]:
        return await self.repo.list(offset, limit)

    async def create_key(self, account: Account, name: str | None = None) -> Credentials:
        new = keys.generate_key()
        key = ApiKey(
            id=new_id("key"),
            account_id=account.id,
            prefix=new.prefix,
            secret_hash=new.secret_hash,
            name=name,
            created_at=utcnow(),
        )
        await self.repo.add(key)
        return Credentials(account, key, new.plaintext)

    async def list_keys(self, account: Account) -> Sequence[ApiKey]:
        return await self.repo.list_keys(account.id)

    async def revoke_key(self, prefix: str) -> ApiKey:
        key = await self.repo.get_key_by_prefix(prefix)
        if key is None:
            raise NotFound(f"no API key with prefix {prefix!r}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.repo.session.flush()
            announce_after_commit(self.repo.session)
        return key

    async def revoke_own_key(self, account: Account, key_id: str) -> ApiKey:
        """Revoke one of the account's keys (404 for another account's, as for none)."""
        key = next((k for k in await self.repo.list_keys(account.id) if k.id == key_id), None)
        if key is None:
            raise NotFound(f"No API key {key_id!r}", details={"id": key_id})
        return await self.revoke_key(key.prefix)

    async def authenticate(self, plaintext: str) -> ApiKey:
        """The live key for a presented secret, or Unauthorized. Every failure looks the same."""
        prefix = keys.split_prefix(plaintext)
        key = await self.repo.get_key_by_prefix(prefix) if prefix else None
        # Compare even when no key was found, so timing does not tell which step failed.
        stored = key.secret_hash if key else keys.hash_key("")
        if not keys.matches(plaintext, stored) or key is None or key.revoked_at is not None:
            raise Unauthorized("Invalid or revoked API key")
        return key

    async def set_plan(
        self,
        account: Account,
        plan: str,
        rate_limit_per_minute: int | None = None,
        chat_requests_per_month: int | None = None,
    ) -> Account:
        for field, value in (
            ("rate_limit_per_minute", rate_limit_per_minute),
            ("chat_requests_per_month", chat_requests_per_month),
        ):
            if value is not None and value < 1:
                raise InvalidRequest(f"{field}: must be at least 1")
        account.plan = await self._plan(plan)
        account.plan_name = account.plan.name
        account.rate_limit_per_minute = rate_limit_per_minute
        account.chat_requests_per_month = chat_requests_per_month
        await self.repo.session.flush()
        announce_after_commit(self.repo.session)
        return account

    async def top_up(self, account: Account, amount: Decimal) -> Account:
        if amount <= 0:
            raise InvalidRequest("amount: must be positive")
        await self.repo.add_balance(account.id, to_micros(amount))
        await self.repo.session.refresh(account, ["balance_micros"])
        announce_after_commit(self.repo.session)
        return account

    async def summary(self, account: Account, now: datetime | None = None) -> AccountSummary:
        """What `GET /v1/user/me` shows: balance, this month's usage and the counts, read
        fresh (the account itself may come from the authentication cache)."""
        now = now or utcnow()
        row = await self.repo.summary(account.id, month_period(now))
        usage = Usage(row.chat_requests, account.effective_chat_quota, next_month_start(now))
        return AccountSummary(row.balance_micros, usage, row.characters, row.conversations,
                              row.favorites)  # fmt: skip

    async def usage_report(self, account: Account, now: datetime | None = None) -> UsageReport:
        """The account's usage this calendar month (UTC), up to and including today."""
        now = (now or utcnow()).astimezone(UTC)
        summary = await self.summary(account, now)
        first = now.date().replace(day=1)
        first_day, today = first.isoformat(), ledger_day(now)
        by_model = [
            UsageLine(*line)
            for line in await self.repo.usage_by_model(account.id, first_day, today)
        ]
        rows = await self.repo.usage_by_day(account.id, first_day, today)
        used = {day: DayLine(day, requests, tokens, cost) for day, requests, tokens, cost in rows}
        days = [(first + timedelta(days=n)).isoformat() for n in range(now.day)]
        return UsageReport(
            period=month_period(now),
            chat_requests=summary.usage.used,
            chat_quota=summary.usage.limit,
            reset_date=summary.usage.reset_date,
            balance_micros=summary.balance_micros,
            by_model=by_model,
            by_day=[used.get(day) or DayLine(day, 0, 0, 0) for day in days],
        )

    async def list_plans(self) -> Sequence[Plan]:
        return await self.repo.list_plans()

    async def update_plan(
        self,
        name: str,
        requests_per_minute: int | None = None,
        chat_requests_per_month: int | None = None,
        characters_api: CharactersApi | None = None,
        webhooks: bool | None = None,
    ) -> Plan:
        plan = await self._plan(name)
        if requests_per_minute is not None:
            if requests_per_minute < 1:
                raise InvalidRequest("requests_per_minute: must be at least 1")
            plan.requests_per_minute = requests_per_minute
        if chat_requests_per_month is not None:
            if chat_requests_per_month < 0:
                raise InvalidRequest("chat_requests_per_month: must not be negative")
            plan.chat_requests_per_month = chat_requests_per_month
        if characters_api is not None:
            plan.characters_api = characters_api
        if webhooks is not None:
            plan.webhooks = webhooks
        await self.repo.session.flush()
        announce_after_commit(self.repo.session)
        return plan
