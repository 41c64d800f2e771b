"""Rules about accounts, keys and plans. Services flush but never commit: the caller's
unit of work (the request, a CLI command) decides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

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


def month_period(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


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
    ) -> Credentials:
        """A new account and its first API key (the plaintext is returned only here)."""
        if not USERNAME_RE.match(username):
            raise InvalidRequest("username: 3 to 32 letters, digits, '_', '.' or '-'")
        if email is not None and (len(email) > 254 or not EMAIL_RE.match(email)):
            raise InvalidRequest(f"email: not an email address: {email!r}")
        if balance < 0:
            raise InvalidRequest("balance: must not be negative")
        if taken := await self.repo.username_or_email_taken(username, email):
            raise Conflict(f"{taken}: already in use")
        plan_row = await self._plan(plan)
        account = Account(
            id=new_id("user"),
            username=username,
            email=email,
            plan_name=plan_row.name,
            balance_micros=to_micros(balance),
            created_at=utcnow(),
        )
        account.plan = plan_row
        await self.repo.add(account)
        return await self.create_key(account)

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
