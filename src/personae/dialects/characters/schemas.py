"""Request and response bodies of the characters API. The shapes that webhook events
show too (a character, a message, a conversation's parts) are `personae.webhook.schemas`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from personae.character.fields import (
    Age,
    AlternateGreetings,
    Appearance,
    Background,
    CardCreator,
    CardVersion,
    CharacterSystemPrompt,
    CreatorNotes,
    Description,
    ExampleDialogue,
    Greeting,
    Name,
    NotNull,
    Personality,
    PostHistoryInstructions,
    Scenario,
    Tags,
)
from personae.conversation.fields import ChatOptions, MessageText, Title
from personae.ids import IdRef
from personae.models.character import Visibility
from personae.numbers import JsonIntegers
from personae.pagination import Page
from personae.text import LINE, TEXT, TextKind, pattern
from personae.timestamps import Timestamp
from personae.webhook.events import EVENT_TYPES
from personae.webhook.schemas import (
    CharacterBrief,
    ChatMessageOut,
    ConversationData,
    LastMessage,
)


class CharactersErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    status: int
    details: dict[str, Any] = Field(default_factory=dict)


class CharactersError(BaseModel):
    error: CharactersErrorDetail


class Pagination(BaseModel):
    total: int
    page: int
    limit: int
    pages: int

    @classmethod
    def of(cls, page: Page[Any]) -> Pagination:
        assert page.number is not None, "a list read by cursor renders CataloguePagination"
        return cls(total=page.total, page=page.number, limit=page.request.size, pages=page.pages)


class CataloguePagination(BaseModel):
    """The catalogue's pages, which can also be read by cursor."""

    total: int
    page: int | None = Field(description="The page's number; null for a page read by cursor.")
    limit: int
    pages: int
    next_cursor: str | None = Field(
        description=(
            "Pass as `cursor` (with the same `sort`, `tags` and any `limit`) for the page "
            "that follows this one; null after the last page."
        )
    )

    @classmethod
    def of(cls, page: Page[Any]) -> CataloguePagination:
        return cls(
            total=page.total,
            page=page.number,
            limit=page.request.size,
            pages=page.pages,
            next_cursor=page.next_cursor,
        )


class ChatRequests(BaseModel):
    used: int
    limit: int
    reset_date: Timestamp


class Subscription(BaseModel):
    plan: str
    status: Literal["active"] = "active"
    chat_requests: ChatRequests


class UserStats(BaseModel):
    characters_created: int
    conversations: int
    favorites: int


class UserMe(BaseModel):
    id: str
    username: str
    email: str | None
    created_at: Timestamp
    balance: float = Field(description="Prepaid balance, charged by priced models.")
    subscription: Subscription
    stats: UserStats


# characters
class CharacterCreate(JsonIntegers):
    """`POST /v1/characters` as JSON; a multipart form carries the same fields plus `image`."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Description
    personality: Personality
    background: Background
    scenario: Scenario = ""
    greeting: Greeting = ""
    alternate_greetings: AlternateGreetings = []
    example_dialogue: ExampleDialogue = ""
    system_prompt: CharacterSystemPrompt = ""
    post_history_instructions: PostHistoryInstructions = ""
    creator_notes: CreatorNotes = ""
    card_creator: CardCreator = ""
    card_version: CardVersion = ""
    tags: Tags = []
    appearance_prompt: Appearance = ""
    age: Age | None = None
    visibility: Visibility = Visibility.PUBLIC


class CharacterUpdate(JsonIntegers):
    """`PATCH /v1/characters/{id}`: only the fields given change."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[Name | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    personality: Annotated[Personality | None, NotNull] = None
    background: Annotated[Background | None, NotNull] = None
    scenario: Annotated[Scenario | None, NotNull] = None
    greeting: Annotated[Greeting | None, NotNull] = None
    alternate_greetings: Annotated[AlternateGreetings | None, NotNull] = None
    example_dialogue: Annotated[ExampleDialogue | None, NotNull] = None
    system_prompt: Annotated[CharacterSystemPrompt | None, NotNull] = None
    post_history_instructions: Annotated[PostHistoryInstructions | None, NotNull] = None
    creator_notes: Annotated[CreatorNotes | None, NotNull] = None
    card_creator: Annotated[CardCreator | None, NotNull] = None
    card_version: Annotated[CardVersion | None, NotNull] = None
    tags: Annotated[Tags | None, NotNull] = None
    appearance_prompt: Annotated[Appearance | None, NotNull] = None
    age: Age | None = Field(default=None, description="null clears it.")
    visibility: Annotated[Visibility | None, NotNull] = None


class CharacterSummary(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    image_url: str | None
    created_at: Timestamp
    likes: int
    chat_count: int


class CharacterPage(BaseModel):
    data: list[CharacterSummary]
    pagination: CataloguePagination


class FavoriteItem(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    image_url: str | None
    created_at: Timestamp
    favorited_at: Timestamp


class FavoritePage(BaseModel):
    data: list[FavoriteItem]
    pagination: Pagination


class FavoriteAdded(BaseModel):
    success: Literal[True] = True
    message: str = "Character added to favorites"
    character_id: str
    favorited_at: Timestamp


class Done(BaseModel):
    """The characters API's acknowledgement of a removal."""

    success: Literal[True] = True
    message: str
    character_id: str


class LorebookOut(BaseModel):
    """`/v1/characters/{id}/lorebook`."""

    character_id: str
    lorebook: dict[str, Any] | None = Field(
        description="The book as it was given (a card's `character_book`); null: none."
    )
    updated_at: Timestamp | None


class LikeState(BaseModel):
    success: Literal[True] = True
    character_id: str
    liked: bool
    likes: int


# chat
class ChatMessageCreate(ChatOptions):
    model_config = ConfigDict(extra="forbid", strict=True)
    message: MessageText
    conversation_id: IdRef | None = Field(default=None, description="Omit to start one.")


class ChatMessagePage(BaseModel):
    data: list[ChatMessageOut]
    pagination: Pagination


class ConversationSummary(ConversationData):
    """A conversation as the characters API shows it: always with a character and a
    message (others are not listed, and are 404 when asked for)."""

    character: CharacterBrief
    last_message: LastMessage


class ConversationPage(BaseModel):
    data: list[ConversationSummary]
    pagination: Pagination


class ConversationTitle(BaseModel):
    """`PATCH /v1/chat/conversations/{id}`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    title: Title


class ConversationDeleted(BaseModel):
    success: Literal[True] = True
    message: str = "Conversation deleted"
    conversation_id: str


class MessageDeleted(BaseModel):
    success: Literal[True] = True
    message: str = "Message deleted"
    message_id: str


# webhooks
# Checked by `known_events` (which names the known ones); documented as the enum it is.
WebhookEventName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=40),
    LINE,
    WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)}),
]
# What a webhook URL looks like: http(s), a host name (labels of letters, digits and
# hyphens), an IPv4 address or a bracketed IPv6 one, an optional port up to 65535, then
# anything one line of text may hold but spaces (`personae/text.py`). No credentials.
# Whether the host resolves, and only to public addresses, is checked after
# (`webhook/ssrf.py`).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}"
    rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}|:(?:(?::{_H}){{1,7}}|:))"
)
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_LINE_FORBIDDEN = pattern(TextKind.LINE).removeprefix("^[^").removesuffix("]*$")
WEBHOOK_URL_PATTERN = (
    rf"^https?://(?:{_LABEL}(?:\.{_LABEL})*|\[{_IPV6}\])(?::{_PORT})?"
    rf"(?:[/?#][^ {_LINE_FORBIDDEN}]*)?$"
)


@dataclass(frozen=True)
class _UrlShape:
    """The URL matches WEBHOOK_URL_PATTERN, which is also its JSON Schema `pattern` (it
    leaves out whatever the text rule before it refuses)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(schema) | {"pattern": WEBHOOK_URL_PATTERN}

    @staticmethod
    def _check(value: str) -> str:
        if re.match(WEBHOOK_URL_PATTERN, value) is None:
            raise ValueError(
                "must be an http:// or https:// URL with a host name or an IP address "
                "(no credentials, no spaces, a port up to 65535)"
            )
        return value


WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000), LINE, _UrlShape()]
WebhookDescription = Annotated[str, StringConstraints(max_length=500), TEXT]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: WebhookUrl
    events: list[WebhookEventName] = Field(
        min_length=1, max_length=20, description=f"Any of: {', '.join(EVENT_TYPES)}."
    )
    description: WebhookDescription = ""

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        return known_events(events)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: Annotated[WebhookUrl | None, NotNull] = None
    events: Annotated[list[WebhookEventName] | None, NotNull] = Field(
        default=None, min_length=1, max_length=20
    )
    description: Annotated[WebhookDescription | None, NotNull] = None
    status: Annotated[Literal["active", "disabled"] | None, NotNull] = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        return known_events(events) if events is not None else None


def known_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})")
    return list(dict.fromkeys(events))


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    status: Literal["active", "disabled"]
    disabled_reason: str | None = Field(description="Why it is disabled, when it is.")
    failing_since: Timestamp | None = Field(description="Deliveries failing since, if they are.")
    created_at: Timestamp
    updated_at: Timestamp


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="Shown only when created or rotated: keep it.")


class WebhookPage(BaseModel):
    data: list[WebhookOut]
    pagination: Pagination


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event: str
    status: Literal["pending", "delivering", "succeeded", "failed"]
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="When it is tried again, if it will be.")
    last_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    created_at: Timestamp


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    pagination: Pagination


class WebhookDeleted(BaseModel):
    success: Literal[True] = True
    message: str = "Webhook deleted"
    webhook_id: str
