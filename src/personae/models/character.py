from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from personae.db.base import Base, UTCDateTime, utcnow
from personae.models.account import Account


# Who may see a character (`Character.visibility`): public ones are in the catalogue. (A
# comment, not a docstring: the API's schemas would show a docstring as its description.)
class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class Character(Base):
    """A character of the characters API and an agent of the agents API: one row.

    The counters are denormalised so that the catalogue sorts on indexed columns instead
    of counting likes, favorites or messages: `likes_count` and `followers_count` move with
    the like and favorite rows, `chat_count` with each conversation started, and `chats_7d`
    is the chat activity of the last seven days (see `character_activity`).
    """

    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    personality: Mapped[str] = mapped_column(Text, default="")
    background: Mapped[str] = mapped_column(Text, default="")
    # The Character Card fields that shape a conversation: its first agent message (and
    # the alternatives offered instead), the situation, and sample exchanges.
    scenario: Mapped[str] = mapped_column(Text, default="", server_default="")
    greeting: Mapped[str] = mapped_column(Text, default="", server_default="")
    alternate_greetings: Mapped[list[str]] = mapped_column(JSON, default=list)
    example_dialogue: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The rest of a Character Card (character/card.py): the card's own system prompt and
    # post-history instructions (both shape the prompt), its notes, author and version.
    system_prompt: Mapped[str] = mapped_column(Text, default="", server_default="")
    post_history_instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    creator_notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    card_creator: Mapped[str] = mapped_column(Text, default="", server_default="")
    card_version: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The card's `extensions` object, verbatim, and what else of an imported card has no
    # column (`CardExtras`: unknown fields, the names and tags as the card wrote them), so
    # that an export gives back what was imported.
    card_extensions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    card_extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # As given, without the age prefix; see `full_appearance_prompt`.
    appearance_prompt: Mapped[str] = mapped_column(Text, default="")
    age: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    sd_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    image_key: Mapped[str | None] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    likes_count: Mapped[int] = mapped_column(Integer, default=0)
    chat_count: Mapped[int] = mapped_column(Integer, default=0)
    followers_count: Mapped[int] = mapped_column(Integer, default=0)
    chats_7d: Mapped[int] = mapped_column(Integer, default=0)

    # No save-update cascade: the owner given to a new character can be the authentication
    # cache's shared, detached row (personae.account.auth), which must never join a session.
    owner: Mapped[Account] = relationship(lazy="raise", cascade="merge")

    __table_args__ = (
        # One index per catalogue order, led by visibility (the catalogue is public only),
        # ending in id so that the order is total and pages never overlap.
        Index(
            "ix_characters_popular", "visibility", likes_count.desc(), chat_count.desc(), id.desc()
        ),
        Index(
            "ix_characters_trending", "visibility", chats_7d.desc(), chat_count.desc(), id.desc()
        ),
        Index("ix_characters_newest", "visibility", created_at.desc(), id.desc()),
        Index("ix_characters_owner", "owner_id", created_at.desc()),
    )

    @property
    def full_appearance_prompt(self) -> str:
        """The appearance prompt with the age prepended, as the agents API shows it."""
        if self.age is None:
            return self.appearance_prompt
        prefix = f"{self.age} years old"
        return f"{prefix}, {self.appearance_prompt}" if self.appearance_prompt else prefix


class CharacterTag(Base):
    """One tag of one character, for filtering; `characters.tags` keeps them for display.

    A tag row also carries copies of its character's visibility and sort keys, so that a
    tagged page is a range of one index of this table (no sort, no join until the page's
    own rows), and `other_tags` (the character's other tags, `,a,b,`), so that the other
    tags of a filter are checked in that same index. `CharacterRepository` keeps the copies
    in step with the character, in the same transaction as every change to it.
    """

    __tablename__ = "character_tags"

    # Primary key (character_id, tag) serves "the tags of a character".
    character_id: Mapped[str] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)
    visibility: Mapped[str] = mapped_column(String(8))
    likes_count: Mapped[int] = mapped_column(Integer, default=0)
    chat_count: Mapped[int] = mapped_column(Integer, default=0)
    chats_7d: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    other_tags: Mapped[str] = mapped_column(Text, default=",")

    __table_args__ = (
        # The catalogue's orders again, led by the tag: the same columns as the character's
        # indexes, then `other_tags` so that a filter of several tags stays index-only.
        Index(
            "ix_character_tags_popular",
            "tag",
            "visibility",
            likes_count.desc(),
            chat_count.desc(),
            character_id.desc(),
            "other_tags",
        ),
        Index(
            "ix_character_tags_trending",
            "tag",
            "visibility",
            chats_7d.desc(),
            chat_count.desc(),
            character_id.desc(),
            "other_tags",
        ),
        Index(
            "ix_character_tags_newest",
            "tag",
            "visibility",
            created_at.desc(),
            character_id.desc(),
            "other_tags",
        ),
    )


class CatalogueCount(Base):
    """How many public characters carry a tag, and (`tag` = "") how many there are: the
    catalogue's totals without counting rows. Moved by `CharacterRepository` in the same
    transaction as the character that changes them.

    `version` is a random number drawn anew whenever the count moves, that is whenever a
    public character gains or loses the tag: a count of several tags together, made while
    each of them had a given version, is still exact while they all have it.
    """

    __tablename__ = "catalogue_counts"

    tag: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_characters: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class Like(Base):
    __tablename__ = "likes"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    character_id: Mapped[str] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Favorite(Base):
    __tablename__ = "favorites"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    character_id: Mapped[str] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    favorited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_favorites_account_time", "account_id", favorited_at.desc()),)


class CharacterActivity(Base):
    """Chat messages with a character per UTC day: what `chats_7d` is recomputed from."""

    __tablename__ = "character_activity"

    character_id: Mapped[str] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    chats: Mapped[int] = mapped_column(Integer, default=0)


class CharacterLorebook(Base):
    """A character's lorebook (a Character Card's `character_book`): the book as a JSON
    document, validated by `character/lorebook.py` and kept as given, entries included.

    A row of its own rather than a column of `characters`: a book may hold hundreds of
    entries, and only a turn, an export and the lorebook's own endpoints read it, never the
    catalogue's pages."""

    __tablename__ = "character_lorebooks"

    character_id: Mapped[str] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    book: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
