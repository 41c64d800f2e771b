"""The `data` of each event: the resource as the characters API renders it (the contract's
choice), so this is the one core module that uses a dialect's renderers. A conversation is
rendered in `ConversationData`, the summary's shape that allows it no character or message
yet; a deleted resource is what identifies it plus `deleted_at`. Each function returns a
closure, so nothing is rendered for an account without a webhook that wants it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from personae.dialects.characters.render import chat_message, conversation_data, detail
from personae.models import Character, Conversation, Image, Message, MessageAlternative
from personae.storage.files import Storage
from personae.webhook.events import Render, emit


def character(storage: Storage, c: Character) -> Render:
    return lambda: detail(storage, c).model_dump(mode="json")


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
        | {"deleted_at": _stamp(deleted_at)}
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
        "created_at": _stamp(c.created_at),
        "deleted_at": _stamp(deleted_at),
    }


def image(storage: Storage, i: Image) -> Render:
    """The characters API has no image resource; this is the agents API's image."""

    def render() -> dict[str, Any]:
        return {
            "id": i.id,
            "prompt": i.prompt,
            "url": storage.url_for(i.image_key),
            "status": i.status,
            "sd_model_id": i.model_id,
            "conversation_id": i.conversation_id,
            "message_id": i.message_id,
            "character_id": i.character_id,
            "width": i.width,
            "height": i.height,
            "seed": i.seed,
            "created_at": _stamp(i.created_at),
            "completed_at": _stamp(i.completed_at),
        }

    return render


def _stamp(value: Any) -> str | None:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None


async def emit_message_posted(
    session: AsyncSession, storage: Storage, c: Conversation, m: Message
) -> None:
    """A message was added to a conversation: `message.created`, then
    `conversation.updated` (its count, last message and activity time changed)."""
    await emit(session, c.account_id, "message.created", message(storage, c, m))
    await emit(session, c.account_id, "conversation.updated", conversation(storage, c, m))
