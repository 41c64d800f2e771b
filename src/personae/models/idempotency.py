from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from personae.db.base import Base, UTCDateTime, utcnow


class IdempotencyKey(Base):
    """An `Idempotency-Key` an account sent with a POST, and what answering it produced.

    The primary key (account, key) is the claim: the first request inserts the row
    `running`, so a concurrent retry finds it and is refused. A request that succeeded
    leaves it `completed` with its response, which retries with the same request get back.
    `claim` names the request that holds (or held) the row, so that only it completes or
    releases it, and a takeover of an abandoned row is a compare-and-swap on it.
    """

    __tablename__ = "idempotency_keys"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    claim: Mapped[str] = mapped_column(String(40))
    # SHA-256 (hex) of the request: method, path and query, media type and body.
    fingerprint: Mapped[str] = mapped_column(String(64))
    request: Mapped[str] = mapped_column(Text)  # "POST /v1/…", named in the 409 message
    state: Mapped[str] = mapped_column(String(10))  # running, completed
    instance_id: Mapped[str] = mapped_column(String(40))  # the server process running it
    status_code: Mapped[int | None] = mapped_column(Integer)
    # [[name, value], …]: what describes the response (its content type, say), not what
    # describes one delivery of it (length, rate-limit headers).
    response_headers: Mapped[list[Any] | None] = mapped_column(JSON)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)
