from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from personae.db.base import Base, UTCDateTime, utcnow


class ChatTurn(Base):
    """A chat turn's reservation, written with it and closed when it ends: `settled`
    (answered and charged) or `released` (failed, abandoned or cut off: the month's chat
    request and the balance hold given back, the user's message marked unanswered).

    A turn still `running` whose server instance stopped beating was cut off by a crash;
    the reconciliation sweep releases it (conversation/turns.py)."""

    __tablename__ = "chat_turns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))  # running, settled, released
    period: Mapped[str] = mapped_column(String(7))  # the month the chat request counts in
    hold_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    charged_micros: Mapped[int | None] = mapped_column(BigInteger)
    model_id: Mapped[str | None] = mapped_column(String(40))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    user_message_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_chat_turns_running", "status", "instance_id"),)


class ServerInstance(Base):
    """A running API process, beating while it lives: its turns are its own to finish."""

    __tablename__ = "server_instances"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pid: Mapped[int] = mapped_column(Integer, default=0)
