from __future__ import annotations

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from personae.db.base import Base


class Plan(Base):
    """A subscription plan. Rows are data: operators edit them with `personae plans set`."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    chat_requests_per_month: Mapped[int] = mapped_column(Integer)
    # "none" (no /v1 access), "basic" or "full"
    characters_api: Mapped[str] = mapped_column(String(16))
    webhooks: Mapped[bool] = mapped_column(Boolean, default=False)
