from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from personae.db.base import Base, UTCDateTime, utcnow
from personae.models.plan import Plan


class Account(Base):
    """A customer of the platform. Money is kept in integer micro-units of the currency."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    plan_name: Mapped[str] = mapped_column(ForeignKey("plans.name", onupdate="CASCADE"))
    balance_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    # Per-account overrides of the plan (the enterprise plan is "set per account").
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    chat_requests_per_month: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The console's sign-in (argon2id, account/passwords.py); null: no password set, so no
    # console sign-in (accounts made by the CLI until `personae accounts password`).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    plan: Mapped[Plan] = relationship(lazy="joined", innerjoin=True)

    @property
    def effective_rate_limit(self) -> int:
        return self.rate_limit_per_minute or self.plan.requests_per_minute

    @property
    def effective_chat_quota(self) -> int:
        return self.chat_requests_per_month or self.plan.chat_requests_per_month
