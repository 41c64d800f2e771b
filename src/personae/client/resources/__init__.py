"""The client's resources, one module per area of the API; each has a sync and an async
class over the same request builders."""

from personae.client.resources.account import (
    AsyncFavorites,
    AsyncModels,
    AsyncUserResource,
    Favorites,
    Models,
    UserResource,
)
from personae.client.resources.agents import Agents, AsyncAgents
from personae.client.resources.characters import AsyncCharacters, Characters
from personae.client.resources.chat import AsyncChat, Chat
from personae.client.resources.conversations import (
    AsyncCompletions,
    AsyncConversations,
    AsyncMessages,
    Completions,
    Conversations,
    Messages,
)
from personae.client.resources.images import AsyncImages, Images
from personae.client.resources.webhooks import AsyncWebhooks, Webhooks, verify

__all__ = [
    "Agents",
    "AsyncAgents",
    "AsyncCharacters",
    "AsyncChat",
    "AsyncCompletions",
    "AsyncConversations",
    "AsyncFavorites",
    "AsyncImages",
    "AsyncMessages",
    "AsyncModels",
    "AsyncUserResource",
    "AsyncWebhooks",
    "Characters",
    "Chat",
    "Completions",
    "Conversations",
    "Favorites",
    "Images",
    "Messages",
    "Models",
    "UserResource",
    "Webhooks",
    "verify",
]
