"""How the characters API renders the core's entities. Its routes use these, and so do
webhook payloads, which the contract defines as the characters API's rendering."""

from __future__ import annotations

from collections.abc import Sequence

from personae.api.types import MessageVersion
from personae.character.fields import Visibility
from personae.dialects.characters.schemas import (
    CharacterBrief,
    CharacterDetail,
    CharacterStats,
    CharacterSummary,
    ChatMessageOut,
    ConversationData,
    ConversationSummary,
    Creator,
    LastMessage,
)
from personae.models import Character, Conversation, Message, MessageAlternative
from personae.storage.files import Storage


def summary(storage: Storage, c: Character) -> CharacterSummary:
    return CharacterSummary(
        id=c.id,
        name=c.name,
        description=c.description,
        tags=c.tags,
        image_url=storage.avatar_url(c),
        created_at=c.created_at,
        likes=c.likes_count,
        chat_count=c.chat_count,
    )


def detail(storage: Storage, c: Character) -> CharacterDetail:
    return CharacterDetail(
        id=c.id,
        name=c.name,
        description=c.description,
        personality=c.personality,
        background=c.background,
        scenario=c.scenario,
        greeting=c.greeting,
        alternate_greetings=c.alternate_greetings,
        example_dialogue=c.example_dialogue,
        tags=c.tags,
        image_url=storage.avatar_url(c),
        created_at=c.created_at,
        updated_at=c.updated_at,
        visibility=Visibility(c.visibility),
        age=c.age,
        appearance_prompt=c.full_appearance_prompt,
        creator=Creator(id=c.owner.id, username=c.owner.username),
        stats=CharacterStats(
            likes=c.likes_count, chat_count=c.chat_count, followers=c.followers_count
        ),
    )


def chat_message(
    storage: Storage,
    conversation: Conversation,
    m: Message,
    versions: Sequence[MessageAlternative] = (),
) -> ChatMessageOut:
    is_character = m.role == "agent"
    return ChatMessageOut(
        id=m.id,
        conversation_id=conversation.id,
        character_id=conversation.character_id if is_character else None,
        content=m.content,
        created_at=m.created_at,
        is_character=is_character,
        image_url=storage.url_for(m.image_key),
        unanswered=m.unanswered,
        alternatives=MessageVersion.list_of(versions),
        selected=m.selected if versions else None,
    )


def conversation_data(
    storage: Storage, conversation: Conversation, last: Message | None
) -> ConversationData:
    """Any conversation, for webhook events."""
    c = conversation.character
    return ConversationData(
        id=conversation.id,
        title=conversation.title,
        character=_brief(storage, c, conversation.account_id) if c else None,
        last_message=_last(last) if last else None,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        message_count=conversation.message_count,
    )


def conversation_summary(
    storage: Storage, conversation: Conversation, last: Message
) -> ConversationSummary:
    """A conversation with a character (the service hands out no other to this API)."""
    c = conversation.character
    assert c is not None, "the characters API lists only conversations with a character"
    return ConversationSummary(
        id=conversation.id,
        title=conversation.title,
        character=_brief(storage, c, conversation.account_id),
        last_message=_last(last),
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        message_count=conversation.message_count,
    )


def _brief(storage: Storage, c: Character, viewer_id: str) -> CharacterBrief:
    """The character a conversation is with, as the conversation's owner may see it: a
    character its creator has since made private keeps its name here, not its avatar."""
    return CharacterBrief(id=c.id, name=c.name, image_url=storage.avatar_url(c, viewer_id))


def _last(m: Message) -> LastMessage:
    return LastMessage(content=m.content, created_at=m.created_at, is_character=m.role == "agent")
