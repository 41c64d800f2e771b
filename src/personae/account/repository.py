"""Every SQL statement about accounts, keys, plans and usage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, joinedload
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import ScalarSelect

from personae.db.batch import update_each
from personae.db.upsert import affected_rows, insert_for
from personae.models import (
    Account,
    ApiKey,
    Character,
    ConsoleSession,
    Conversation,
    Favorite,
    Invite,
    MonthlyUsage,
    Plan,
    UsageEntry,
)

#: One (kind, model_id) line of the usage ledger summed over days: kind, model_id,
#: requests, prompt_tokens, completion_tokens, cost_micros.
ModelTotals = tuple[str, str, int, int, int, int]
#: One day of the usage ledger summed over kinds and models: day, requests, tokens
#: (prompt + completion), cost_micros.
DayTotals = tuple[str, int, int, int]


@dataclass(frozen=True)
class Summary:
    balance_micros: int
    chat_requests: int  # this month's
    characters: int
    conversations: int
    favorites: int


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: Account | ApiKey | Plan | ConsoleSession | Invite) -> None:
        self.session.add(row)
        await self.session.flush()

    # accounts
    async def get(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def get_by_id_or_username(self, ref: str) -> Account | None:
        stmt = select(Account).where(or_(Account.id == ref, Account.username == ref))
        return (await self.session.scalars(stmt)).first()

    async def username_or_email_taken(self, username: str, email: str | None) -> str | None:
        """Which of the two is already used ("username", "email"), if any."""
        if await self.session.scalar(select(Account.id).where(Account.username == username)):
            return "username"
        if email and await self.session.scalar(select(Account.id).where(Account.email == email)):
            return "email"
        return None

    async def list(self, offset: int, limit: int) -> Sequence[Account]:
        stmt = select(Account).order_by(Account.created_at, Account.id).offset(offset).limit(limit)
        return (await self.session.scalars(stmt)).all()

    async def lock(self, account_id: str) -> None:
        """Lock the account's row until the transaction ends (the lock order's step 2) with
        a no-op UPDATE: a row lock on PostgreSQL, and on SQLite the database's write lock
        (a SELECT … FOR UPDATE would lock nothing there). What the transaction reads after
        this, no other writer changes before it commits."""
        await self.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(balance_micros=Account.balance_micros)
            .execution_options(synchronize_session=False)
        )

    async def take_balance(self, account_id: str, micros: int) -> bool:
        """Take `micros` from the balance if it covers them, in one statement (no race)."""
        result = await self.session.execute(
            update(Account)
            .where(Account.id == account_id, Account.balance_micros >= micros)
            .values(balance_micros=Account.balance_micros - micros)
        )
        return affected_rows(result) == 1

    async def add_balance(self, account_id: str, delta_micros: int) -> None:
        await self.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(balance_micros=Account.balance_micros + delta_micros)
        )

    # API keys
    async def get_key_by_prefix(self, prefix: str) -> ApiKey | None:
        stmt = (
            select(ApiKey)
            .where(ApiKey.prefix == prefix)
            .options(joinedload(ApiKey.account, innerjoin=True))
        )
        return (await self.session.scalars(stmt)).first()

    async def list_keys(self, account_id: str) -> Sequence[ApiKey]:
        stmt = select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at)
        return (await self.session.scalars(stmt)).all()

    async def touch_keys(self, uses: dict[str, datetime]) -> None:
        """Record each key's last use, in one batched statement."""
        await update_each(self.session, ApiKey, {k: {"last_used_at": w} for k, w in uses.items()})

    # console sign-in
    async def get_by_login(self, login: str) -> Account | None:
        """The account whose username, or email, is `login` (case-insensitive for the email)."""
        stmt = select(Account).where(
            or_(Account.username == login, func.lower(Account.email) == login.lower())
        )
        return (await self.session.scalars(stmt)).first()

    async def session_account(self, token_hash: str, now: datetime) -> Account | None:
        stmt = (
            select(Account)
            .join(ConsoleSession, ConsoleSession.account_id == Account.id)
            .where(ConsoleSession.token_hash == token_hash, ConsoleSession.expires_at > now)
        )
        return (await self.session.scalars(stmt)).first()

    async def delete_sessions(
        self, *, token_hash: str | None = None, account_id: str | None = None,
        keep: str | None = None,
    ) -> None:  # fmt: skip
        """One session (`token_hash`), or every session of an account but `keep`."""
        stmt = delete(ConsoleSession)
        if token_hash is not None:
            stmt = stmt.where(ConsoleSession.token_hash == token_hash)
        if account_id is not None:
            stmt = stmt.where(ConsoleSession.account_id == account_id)
        if keep is not None:
            stmt = stmt.where(ConsoleSession.token_hash != keep)
        await self.session.execute(stmt)

    async def delete_expired_sessions(self, now: datetime) -> None:
        await self.session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))

    async def claim_invite(self, code: str, account_id: str, now: datetime) -> bool:
        """Mark an unused invite used by `account_id`; False if none such is unused."""
        result = await self.session.execute(
            update(Invite)
            .where(Invite.code == code, Invite.used_at.is_(None))
            .values(used_by=account_id, used_at=now)
        )
        return affected_rows(result) == 1

    async def list_invites(self, limit: int = 100) -> Sequence[Invite]:
        stmt = select(Invite).order_by(Invite.created_at.desc()).limit(limit)
        return (await self.session.scalars(stmt)).all()

    # plans
    async def get_plan(self, name: str) -> Plan | None:
        return await self.session.get(Plan, name)

    async def list_plans(self) -> Sequence[Plan]:
        stmt = select(Plan).order_by(Plan.requests_per_minute, Plan.name)
        return (await self.session.scalars(stmt)).all()

    # usage
    async def reserve_chat_request(self, account_id: str, period: str, limit: int) -> bool:
        """Count one chat request of the month if fewer than `limit` are counted, in one
        statement: the month's row is made with 1, or moved up under its own lock."""
        if limit < 1:
            return False
        stmt = (
            insert_for(self.session, MonthlyUsage)
            .values(account_id=account_id, period=period, chat_requests=1)
            .on_conflict_do_update(
                index_elements=[MonthlyUsage.account_id, MonthlyUsage.period],
                set_={"chat_requests": MonthlyUsage.chat_requests + 1},
                where=MonthlyUsage.chat_requests < limit,
            )
            .returning(MonthlyUsage.chat_requests)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def release_chat_request(self, account_id: str, period: str) -> None:
        await self.session.execute(
            update(MonthlyUsage)
            .where(
                MonthlyUsage.account_id == account_id,
                MonthlyUsage.period == period,
                MonthlyUsage.chat_requests > 0,
            )
            .values(chat_requests=MonthlyUsage.chat_requests - 1)
        )

    async def record_usage(
        self,
        account_id: str,
        day: str,
        kind: str,
        model_id: str,
        requests: int,
        prompt_tokens: int,
        completion_tokens: int,
        cost_micros: int,
    ) -> None:
        """Add to the usage ledger's row of (account, day, kind, model), in one statement:
        the row is made with these numbers, or its numbers are moved up under its own lock
        (the lock order's step 1, after `monthly_usage`)."""
        stmt = insert_for(self.session, UsageEntry).values(
            account_id=account_id,
            day=day,
            kind=kind,
            model_id=model_id,
            requests=requests,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micros=cost_micros,
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[
                    UsageEntry.account_id,
                    UsageEntry.day,
                    UsageEntry.kind,
                    UsageEntry.model_id,
                ],
                set_={
                    "requests": UsageEntry.requests + stmt.excluded.requests,
                    "prompt_tokens": UsageEntry.prompt_tokens + stmt.excluded.prompt_tokens,
                    "completion_tokens": (
                        UsageEntry.completion_tokens + stmt.excluded.completion_tokens
                    ),
                    "cost_micros": UsageEntry.cost_micros + stmt.excluded.cost_micros,
                },
            )
        )

    async def usage_by_model(
        self, account_id: str, first_day: str, last_day: str
    ) -> Sequence[ModelTotals]:
        """The ledger's totals per (kind, model) over the days `first_day` to `last_day`
        ("YYYY-MM-DD", both included), dearest first (then by model, then kind)."""
        cost = func.sum(UsageEntry.cost_micros)
        stmt = (
            select(
                UsageEntry.kind,
                UsageEntry.model_id,
                func.sum(UsageEntry.requests),
                func.sum(UsageEntry.prompt_tokens),
                func.sum(UsageEntry.completion_tokens),
                cost,
            )
            .where(
                UsageEntry.account_id == account_id,
                UsageEntry.day >= first_day,
                UsageEntry.day <= last_day,
            )
            .group_by(UsageEntry.kind, UsageEntry.model_id)
            .order_by(cost.desc(), UsageEntry.model_id, UsageEntry.kind)
        )
        rows = await self.session.execute(stmt)
        # PostgreSQL sums BIGINT columns as NUMERIC: back to int.
        return [(kind, model, int(r), int(p), int(c), int(m)) for kind, model, r, p, c, m in rows]

    async def usage_by_day(
        self, account_id: str, first_day: str, last_day: str
    ) -> Sequence[DayTotals]:
        """The ledger's totals per day over `first_day` to `last_day` (both included), for
        the days that have rows, oldest first."""
        stmt = (
            select(
                UsageEntry.day,
                func.sum(UsageEntry.requests),
                func.sum(UsageEntry.prompt_tokens + UsageEntry.completion_tokens),
                func.sum(UsageEntry.cost_micros),
            )
            .where(
                UsageEntry.account_id == account_id,
                UsageEntry.day >= first_day,
                UsageEntry.day <= last_day,
            )
            .group_by(UsageEntry.day)
            .order_by(UsageEntry.day)
        )
        rows = await self.session.execute(stmt)
        return [(day, int(r), int(t), int(m)) for day, r, t, m in rows]

    async def summary(self, account_id: str, period: str) -> Summary:
        """The account's balance, usage and counts in one statement (one round trip), each
        count an index range. A read model spanning the domains of `GET /v1/user/me`."""
        params = {"account_id": account_id, "period": period}
        row = (await self.session.execute(_SUMMARY, params)).one()
        return Summary(*(int(value or 0) for value in row))


def _summary_statement() -> Select[tuple[int, int, int, int, int]]:
    """`summary`'s statement, built once: composing it costs more than running it."""
    account_id: BindParameter[str] = bindparam("account_id")

    def count(column: InstrumentedAttribute[str]) -> ScalarSelect[int]:
        return select(func.count()).where(column == account_id).scalar_subquery()

    usage = select(func.coalesce(func.sum(MonthlyUsage.chat_requests), 0)).where(
        MonthlyUsage.account_id == account_id, MonthlyUsage.period == bindparam("period")
    )
    return select(
        Account.balance_micros,
        usage.scalar_subquery(),
        count(Character.owner_id),
        count(Conversation.account_id),
        count(Favorite.account_id),
    ).where(Account.id == account_id)


_SUMMARY = _summary_statement()
