from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from personae.db.base import Base, UTCDateTime, utcnow
from personae.models.character import Character


class Conversation(Base):
    """A persistent chat, owned by one account, optionally with one character."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    character_id: Mapped[str | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200), default="")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    llm_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # The highest `seq` handed out: messages can be deleted, so the count is not it.
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Kept so that listing conversations with their last message is one join, not N queries.
    last_message_id: Mapped[str | None] = mapped_column(String(40))

    character: Mapped[Character | None] = relationship(lazy="raise")

    __table_args__ = (
        Index("ix_conversations_account_activity", "account_id", updated_at.desc(), id.desc()),
        Index(
            "ix_conversations_account_character",
            "account_id",
            "character_id",
            updated_at.desc(),
            id.desc(),
        ),
    )


class Message(Base):
    """One turn. `seq` numbers a conversation's messages from 1, so the newest N that fit
    the model's context are one index range."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(8))  # user, agent, system
    content: Mapped[str] = mapped_column(Text, default="")
    image_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tokens: Mapped[int | None] = mapped_column(Integer)  # completion tokens, for agent turns
    # What `content` costs in a prompt, counted once by the tokenizer of the model named in
    # `prompt_tokens_model` (conversation/prompt.py); NULL until counted, and again when
    # the content changes. A turn on another model counts again and stores its own.
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens_model: Mapped[str | None] = mapped_column(String(40))
    # A user's message whose turn ended without an answer (the engine failed, the client
    # went away, the server died): a client can retry or delete it.
    unanswered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # An agent message regenerated (or a greeting with alternates) keeps every version in
    # `message_alternatives`; `content` is always the selected one, so prompts and lists
    # read messages alone. 0 alternatives: the message has only its content.
    alternative_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    selected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (Index("uq_messages_conversation_seq", "conversation_id", "seq", unique=True),)


class MessageAlternative(Base):
    """One version of an agent message (a swipe), numbered from 0 in the order made."""

    __tablename__ = "message_alternatives"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[str] = mapped_column(Text, default="")
    tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
