"""How the characters API renders what only it shows: the catalogue's summary of a character
and the list's summary of a conversation. What webhook events show too (a character, a
message, a conversation's parts) is rendered once, in `personae.webhook.payloads`."""

from __future__ import annotations

from personae.dialects.characters.schemas import CharacterSummary, ConversationSummary
from personae.models import Character, Conversation, Message
from personae.storage.files import Storage
from personae.webhook.payloads import character_brief, last_message


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


def conversation_summary(
    storage: Storage, conversation: Conversation, last: Message
) -> ConversationSummary:
    """A conversation with a character (the service hands out no other to this API)."""
    c = conversation.character
    assert c is not None, "the characters API lists only conversations with a character"
    return ConversationSummary(
        id=conversation.id,
        title=conversation.title,
        character=character_brief(storage, c, conversation.account_id),
        last_message=last_message(last),
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        message_count=conversation.message_count,
    )
