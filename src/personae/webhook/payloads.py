"""The `data` of each event: the resource as the characters API renders it (the contract's
choice), so this is the one core module that uses a dialect's renderers. Each function
returns a closure, so nothing is rendered for an account without a webhook that wants it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from personae.dialects.characters.render import chat_message, conversation_summary, detail
from personae.image.storage import Storage
from personae.models import Character, Conversation, Image, Message
from personae.webhook.events import Render, emit


def character(storage: Storage, c: Character) -> Render:
    return lambda: detail(storage, c).model_dump(mode="json")


def message(storage: Storage, conversation: Conversation, m: Message) -> Render:
    return lambda: chat_message(storage, conversation, m).model_dump(mode="json")


def conversation(storage: Storage, c: Conversation, last: Message | None) -> Render:
    return lambda: conversation_summary(storage, c, last).model_dump(mode="json")


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
