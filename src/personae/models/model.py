from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from personae.db.base import Base, UTCDateTime, utcnow


class Model(Base):
    """A registered language (`llm`) or image (`sd`) model and the engine that runs it.

    `cost_micros` is the price per 1,000 tokens for an LLM and per image for an SD model.
    """

    __tablename__ = "models"
    __table_args__ = (Index("ix_models_type_enabled", "type", "enabled"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    engine: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_context: Mapped[int | None] = mapped_column(Integer)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
