"""ORM tables, one module per table. Importing this package registers them all."""

from personae.models.account import Account
from personae.models.api_key import ApiKey
from personae.models.character import (
    CatalogueCount,
    Character,
    CharacterActivity,
    CharacterLorebook,
    CharacterTag,
    Favorite,
    Like,
)
from personae.models.console import ConsoleSession, Invite
from personae.models.conversation import Conversation, Message, MessageAlternative
from personae.models.idempotency import IdempotencyKey
from personae.models.image import Image
from personae.models.model import Model
from personae.models.plan import Plan
from personae.models.turn import ChatTurn, ServerInstance
from personae.models.usage import MonthlyUsage, UsageEntry
from personae.models.webhook import Webhook, WebhookDelivery, WebhookEvent

__all__ = [
    "Account",
    "ApiKey",
    "CatalogueCount",
    "Character",
    "CharacterActivity",
    "CharacterLorebook",
    "CharacterTag",
    "ChatTurn",
    "ConsoleSession",
    "Conversation",
    "Favorite",
    "IdempotencyKey",
    "Image",
    "Invite",
    "Like",
    "Message",
    "MessageAlternative",
    "Model",
    "MonthlyUsage",
    "Plan",
    "ServerInstance",
    "UsageEntry",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
]
