from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
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
