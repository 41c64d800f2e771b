from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from personae.db.base import Base


class MonthlyUsage(Base):
    """Chat requests an account made in one calendar month (UTC), e.g. period "2026-11"."""

    __tablename__ = "monthly_usage"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    chat_requests: Mapped[int] = mapped_column(Integer, default=0)


class UsageEntry(Base):
    """The usage ledger: what an account used of one model on one day (UTC), by kind
    (`chat`: a settled turn; `image`: a finished image). Written in the transaction that
    settles the turn or finishes the image, so it agrees with the balance; the month's
    chat requests that quotas count are `MonthlyUsage` (reserved when a turn starts)."""

    __tablename__ = "usage_ledger"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # "2026-11-24"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
