"""The `data` of each event, and the one renderer of each of its shapes
(`webhook/schemas.py`): the resource as the characters API renders it (the contract's
choice), so that API's routes render with these same functions. A conversation is rendered
in `ConversationData`, the summary's shape that allows it no character or message yet; a
deleted resource is what identifies it plus `deleted_at`. The event functions return a
closure, so nothing is rendered for an account without a webhook that wants it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from personae.models import Character, Conversation, Image, Message, MessageAlternative
from personae.models.character import Visibility
from personae.storage.files import Storage
from personae.timestamps import format_timestamp
from personae.webhook.events import Render, emit
from personae.webhook.schemas import (
    CharacterBrief,
    CharacterDetail,
    CharacterStats,
    ChatMessageOut,
    ConversationData,
    Creator,
    ImageData,
    LastMessage,
    MessageVersion,
)


# the shapes
def character_detail(storage: Storage, c: Character) -> CharacterDetail:
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
        system_prompt=c.system_prompt,
        post_history_instructions=c.post_history_instructions,
        creator_notes=c.creator_notes,
        card_creator=c.card_creator,
        card_version=c.card_version,
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
        character=character_brief(storage, c, conversation.account_id) if c else None,
        last_message=last_message(last) if last else None,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        message_count=conversation.message_count,
    )


def character_brief(storage: Storage, c: Character, viewer_id: str) -> CharacterBrief:
    """The character a conversation is with, as the conversation's owner may see it: a
    character its creator has since made private keeps its name here, not its avatar."""
    return CharacterBrief(id=c.id, name=c.name, image_url=storage.avatar_url(c, viewer_id))


def last_message(m: Message) -> LastMessage:
    return LastMessage(content=m.content, created_at=m.created_at, is_character=m.role == "agent")


def image_data(storage: Storage, i: Image) -> ImageData:
    return ImageData(
        id=i.id,
        prompt=i.prompt,
        url=storage.url_for(i.image_key),
        status=i.status,
        sd_model_id=i.model_id,
        conversation_id=i.conversation_id,
        message_id=i.message_id,
        character_id=i.character_id,
        width=i.width,
        height=i.height,
        seed=i.seed,
        created_at=i.created_at,
        completed_at=i.completed_at,
    )


# the events' data
def character(storage: Storage, c: Character) -> Render:
    return lambda: character_detail(storage, c).model_dump(mode="json")


def message(
    storage: Storage,
    conversation: Conversation,
    m: Message,
    versions: Sequence[MessageAlternative] = (),
) -> Render:
    return lambda: chat_message(storage, conversation, m, versions).model_dump(mode="json")


def deleted_message(
    storage: Storage, conversation: Conversation, m: Message, deleted_at: datetime
) -> Render:
    """The message as it was (without its versions), and when it went."""
    return lambda: (
        chat_message(storage, conversation, m).model_dump(mode="json")
        | {"deleted_at": format_timestamp(deleted_at)}
    )


def conversation(storage: Storage, c: Conversation, last: Message | None) -> Render:
    return lambda: conversation_data(storage, c, last).model_dump(mode="json")


def deleted_conversation(c: Conversation, deleted_at: datetime) -> Render:
    """What identifies the conversation that went: its messages went with it."""
    return lambda: {
        "id": c.id,
        "title": c.title,
        "character_id": c.character_id,
        "message_count": c.message_count,
        "created_at": format_timestamp(c.created_at),
        "deleted_at": format_timestamp(deleted_at),
    }


def image(storage: Storage, i: Image) -> Render:
    return lambda: image_data(storage, i).model_dump(mode="json")


async def emit_message_posted(
    session: AsyncSession, storage: Storage, c: Conversation, m: Message
) -> None:
    """A message was added to a conversation: `message.created`, then
    `conversation.updated` (its count, last message and activity time changed)."""
    await emit(session, c.account_id, "message.created", message(storage, c, m))
    await emit(session, c.account_id, "conversation.updated", conversation(storage, c, m))
