from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from personae.db.base import Base, UTCDateTime, utcnow


class ImageStatus:
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    # Completed, then its file was deleted (its character deleted, its avatar replaced):
    # the row stays (what was made and paid for), without a URL that would answer 404.
    DELETED = "deleted"
    FINISHED = (COMPLETED, FAILED, DELETED)


class Image(Base):
    """A generated image and the job that makes it. The row is the job's durable state:
    the task queue only carries the id, so a lost message or a dead worker is recovered
    from here (see `personae.image.jobs`).

    status: pending -> running -> completed | failed, and completed -> deleted when its
    file goes (`ImageStatus`). `lease_until` is renewed by the
    worker while it runs; a running job whose lease has passed belongs to a dead worker.
    """

    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # No foreign key: a model can be removed while its images (and their prices) remain.
    model_id: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(8), default="image")  # image, avatar
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int] = mapped_column(Integer)
    guidance: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    character_id: Mapped[str | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL")
    )
    message_id: Mapped[str | None] = mapped_column(String(40))
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    image_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The X-Request-Id of the request that asked for it (the job's log lines carry it).
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_images_account_created", "account_id", created_at.desc(), id.desc()),
        Index("ix_images_status", "status", "enqueued_at"),
    )
