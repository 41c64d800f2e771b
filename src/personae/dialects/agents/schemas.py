"""Request and response bodies of the agents API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from personae.account.money import from_micros
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
from personae.conversation.fields import (
    MAX_COMPLETION_MESSAGES,
    MAX_MESSAGE,
    ChatOptions,
    MessageText,
    SystemPrompt,
    Title,
)
from personae.engines.image.base import MAX_SIDE, MIN_SIDE
from personae.ids import IdRef
from personae.image.service import MAX_SEED
from personae.models import Model
from personae.models.character import Visibility
from personae.numbers import JsonIntegers
from personae.text import TEXT
from personae.timestamps import Timestamp
from personae.webhook.schemas import MessageVersion


class AgentsError(BaseModel):
    error: str = Field(examples=["Detailed error message explaining what went wrong"])


class ModelOut(BaseModel):
    id: str
    name: str
    type: str
    max_context: int | None = None
    cost_per_1k_tokens: float | None = Field(default=None, description="LLM models only.")
    sampling: dict[str, float] | None = Field(
        default=None,
        description="LLM models only: the model's sampling defaults, which a request may "
        "override (what is absent is left to the engine).",
    )
    cost_per_image: float | None = Field(default=None, description="Image (sd) models only.")
    placeholder: bool | None = Field(
        default=None, description="Image models only: true if it draws placeholders, no diffusion."
    )

    @classmethod
    def of(cls, model: Model) -> ModelOut:
        cost = from_micros(model.cost_micros)
        if model.type == "llm":
            return cls(
                id=model.id,
                name=model.name,
                type=model.type,
                max_context=model.max_context,
                cost_per_1k_tokens=cost,
                sampling=model.settings.get("sampling") or {},
            )
        return cls(
            id=model.id,
            name=model.name,
            type=model.type,
            cost_per_image=cost,
            placeholder=model.engine == "placeholder",
        )


class AgentCreate(JsonIntegers):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Name
    appearance_prompt: Appearance = ""
    personality_prompt: Personality = ""
    description: Description = ""
    background: Background = ""
    scenario: Scenario = ""
    greeting: Greeting = ""
    alternate_greetings: AlternateGreetings = []
    example_dialogue: ExampleDialogue = ""
    system_prompt: CharacterSystemPrompt = ""
    post_history_instructions: PostHistoryInstructions = ""
    creator_notes: CreatorNotes = ""
    card_creator: CardCreator = ""
    card_version: CardVersion = ""
    sd_model_id: IdRef | None = Field(
        default=None, description="An enabled image model, for the avatar."
    )
    age: Age | None = None
    tags: Tags = []
    visibility: Visibility = Field(
        default=Visibility.PRIVATE,
        strict=False,  # the enum from its JSON string
        description="Agents are private unless made public.",
    )


class AgentUpdate(JsonIntegers):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[Name | None, NotNull] = None
    appearance_prompt: Annotated[Appearance | None, NotNull] = None
    personality_prompt: Annotated[Personality | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
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
    sd_model_id: IdRef | None = Field(default=None, description="null clears it.")
    age: Age | None = Field(default=None, description="null clears it.")
    tags: Annotated[Tags | None, NotNull] = None
    visibility: Annotated[Visibility | None, NotNull] = Field(default=None, strict=False)


class AgentOut(BaseModel):
    id: str
    name: str
    appearance_prompt: str = Field(description='With "{age} years old, " in front when age is set.')
    personality_prompt: str
    description: str
    background: str
    scenario: str
    greeting: str
    alternate_greetings: list[str]
    example_dialogue: str
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator_notes: str = ""
    card_creator: str = ""
    card_version: str = ""
    avatar_url: str | None
    age: int | None
    tags: list[str]
    visibility: Visibility
    sd_model_id: str | None
    created_at: Timestamp


AgentsRole = Literal["user", "agent", "system", "assistant"]


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: AgentsRole
    content: Annotated[str, StringConstraints(max_length=MAX_MESSAGE), TEXT]


class CompletionRequest(ChatOptions):
    model_config = ConfigDict(extra="forbid", strict=True)
    messages: list[InputMessage] = Field(min_length=1, max_length=MAX_COMPLETION_MESSAGES)
    llm_id: IdRef
    agent_id: IdRef | None = None


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: Title = ""
    system_prompt: SystemPrompt = ""
    llm_id: IdRef | None = Field(default=None, description="Default: the default LLM.")
    agent_id: IdRef | None = None
    messages: list[InputMessage] = Field(default=[], max_length=MAX_COMPLETION_MESSAGES)


class MessageCreate(ChatOptions):
    model_config = ConfigDict(extra="forbid", strict=True)
    content: MessageText
    llm_id: IdRef | None = Field(default=None, description="Default: the conversation's.")


class ConversationOut(BaseModel):
    id: str
    title: str
    system_prompt: str
    llm_id: str | None
    agent_id: str | None
    created_at: Timestamp
    last_message_at: Timestamp | None
    message_count: int


class MessageOut(BaseModel):
    id: str
    content: str
    role: Literal["user", "agent", "system"]
    created_at: Timestamp
    image_url: str | None = None
    unanswered: bool = Field(
        default=False,
        exclude_if=lambda v: not v,
        description="Only on a user's message whose turn ended without an answer (the engine "
        "failed, the client went away, the server stopped): retry it, or delete it.",
    )
    thought_process: dict[str, Any] | None = Field(
        default=None, exclude_if=lambda v: v is None, description="Only with `verbose`."
    )
    alternatives: list[MessageVersion] = Field(
        default=[],
        exclude_if=lambda v: not v,
        description="Only on an agent message with versions (regenerated, or a greeting with "
        "alternates): every version; `content` is the selected one's.",
    )
    selected: int | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="With `alternatives`: the index of the version shown as `content`.",
    )


class ConversationUpdate(BaseModel):
    """`PATCH /api/v1/conversations/{id}`: the fields given change (at least one)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"minProperties": 1})
    title: Annotated[Title | None, NotNull] = None
    system_prompt: Annotated[SystemPrompt | None, NotNull] = None

    @model_validator(mode="after")
    def _some(self) -> ConversationUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give `title` or `system_prompt`")
        return self


class ImageCreate(JsonIntegers):
    model_config = ConfigDict(extra="forbid", strict=True)
    prompt: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), TEXT
    ]
    sd_model_id: IdRef | None = Field(default=None, description="Default: the default image model.")
    conversation_id: IdRef | None = Field(
        default=None, description="Post the image in this conversation."
    )
    async_: bool = Field(
        default=False,
        alias="async",
        description="Answer at once (202, status pending); fetch the image later by its id.",
    )
    negative_prompt: Annotated[str, StringConstraints(max_length=2000), TEXT] | None = None
    width: int | None = Field(default=None, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int | None = Field(default=None, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int | None = Field(default=None, ge=1, le=150)
    guidance: float | None = Field(default=None, ge=0, le=30)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)


ImageState = Literal["pending", "running", "completed", "failed", "deleted"]


class ImageOut(BaseModel):
    id: str
    prompt: str
    url: str | None = Field(
        description="null until the image is completed, and once its file is deleted. "
        "A signed URL that expires (PERSONAE_FILE_URL_TTL_SECONDS): read the image again "
        "for a fresh one."
    )
    status: ImageState = Field(
        description="`deleted`: it was completed, then its file went with its agent (or was "
        "replaced by a newer avatar)."
    )
    error: str | None = Field(description="Why the image failed, when it did.")
    attempts: int = Field(description="Runs so far; a job is retried if its worker dies.")
    sd_model_id: str
    conversation_id: str | None
    message_id: str | None = Field(description="The conversation message that shows it.")
    width: int
    height: int
    seed: int
    created_at: Timestamp
    completed_at: Timestamp | None


class ImagePagination(BaseModel):
    total_items: int
    current_page: int
    page_size: int
    total_pages: int
    next_page: int | None
    prev_page: int | None


class ImagePage(BaseModel):
    data: list[ImageOut]
    pagination: ImagePagination
