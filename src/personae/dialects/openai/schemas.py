"""Request and response bodies of the OpenAI-compatible endpoint, after OpenAI's Chat
Completions API: the fields it takes (and Personae's sampling settings, as vLLM and
llama.cpp's server take theirs), the objects it answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from personae.conversation.fields import (
    MAX_COMPLETION_MESSAGES,
    MAX_MESSAGE,
    MAX_SEED,
    MaxTokens,
    TurnOptions,
)
from personae.engines.llm.base import Role, Sampling
from personae.errors import InvalidRequest
from personae.numbers import JsonIntegers
from personae.text import LINE, TEXT

# `model` is a character's id, or `character:NAME` for one of the caller's own by name.
BY_NAME = "character:"
MAX_MODEL = 120
# OpenAI's own bounds on `stop` and `metadata`.
MAX_STOPS = 4
MAX_STOP = 100
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_USER = 256
MAX_PARTS = 100
# A conversation's id starts so (`conv_…`); a `user` that does names a conversation.
CONVERSATION_PREFIX = "conv_"

# Fields of OpenAI's API that this endpoint does not offer: a request that sends one is
# refused naming it, rather than answered as if the field had been honoured.
UNSUPPORTED = (
    "audio",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "modalities",
    "parallel_tool_calls",
    "prediction",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "service_tier",
    "store",
    "tool_choice",
    "tools",
    "top_logprobs",
    "verbosity",
    "web_search_options",
)
# OpenAI's roles as the engines know them: `developer` is the newer name of `system`.
ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}

Content = Annotated[str, StringConstraints(max_length=MAX_MESSAGE), TEXT]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(
        description="`invalid_request_error`, `authentication_error`, `permission_error`, "
        "`not_found_error`, `insufficient_quota` (402, and the monthly quota's 429), "
        "`rate_limit_error` or `server_error`."
    )
    param: str | None = Field(description="The request's field at fault, if one is.")
    code: str | None = Field(description="Personae's error code (`payment_required`, …).")


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


class ChatTextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: Content


class ChatInputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: Content | Annotated[list[ChatTextPart], Field(min_length=1, max_length=MAX_PARTS)] = (
        Field(description="Text, or text parts (joined by line breaks). Images are not taken.")
    )
    name: Annotated[str, StringConstraints(max_length=64), LINE] | None = Field(
        default=None, description="Accepted and ignored."
    )

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class ChatStreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool | None = Field(
        default=None, description="End the stream with a chunk holding `usage`."
    )
    include_obfuscation: bool | None = Field(
        default=None, description="Accepted and ignored: chunks are never padded."
    )


StopText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP), TEXT]
MetadataKey = Annotated[str, StringConstraints(max_length=MAX_METADATA_KEY), LINE]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE), LINE]


class ChatCompletionRequest(Sampling, JsonIntegers):
    """`POST /openai/v1/chat/completions`. The sampling settings beyond OpenAI's
    (`min_p`, `top_k`, `repeat_penalty`, `dry_*`) are Personae's, as in its other
    dialects."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)
    model: Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL), LINE] = Field(
        description="A character's id (`char_…`), or `character:NAME` for one of your own."
    )
    messages: list[ChatInputMessage] = Field(min_length=1, max_length=MAX_COMPLETION_MESSAGES)
    stream: bool | None = Field(default=None, description="Answer as Server-Sent Events.")
    stream_options: ChatStreamOptions | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = Field(
        default=None, description="Longest answer, in tokens; over `max_tokens` if both."
    )
    n: Annotated[int, Field(ge=1, le=1)] | None = Field(
        default=None, description="One answer per request."
    )
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = Field(
        default=None, description="The same seed and input give the same answer."
    )
    stop: StopText | Annotated[list[StopText], Field(max_length=MAX_STOPS)] | None = Field(
        default=None, description="The answer ends before any of these."
    )
    user: Annotated[str, StringConstraints(max_length=MAX_USER), LINE] | None = Field(
        default=None,
        description="A conversation's id (`conv_…`) stores the turn there; any other value "
        "is an end user's label, ignored.",
    )
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA)] | None = (
        Field(
            default=None,
            description="`conversation_id`: one of your conversations with this character; the "
            "last message is then the turn, stored there. Other keys are ignored.",
        )
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in UNSUPPORTED:
                if name in data:
                    raise InvalidRequest(
                        f"{name}: not supported by this server's OpenAI-compatible endpoint "
                        "(docs/api.md, The OpenAI-compatible endpoint)",
                        details={"field": name},
                    )
        return data

    def turn_options(self, default_max_tokens: int) -> TurnOptions:
        sampling = Sampling.model_validate(self.model_dump(include=set(Sampling.model_fields)))
        most = self.max_completion_tokens or self.max_tokens or default_max_tokens
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return TurnOptions(most, sampling, self.seed, stop=stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def conversation_id(self) -> str | None:
        """The conversation the turn is stored in: `metadata.conversation_id`, else a
        `user` that is a conversation's id; None for a stateless completion."""
        given = (self.metadata or {}).get("conversation_id")
        if given is not None:
            return given
        if self.user is not None and self.user.startswith(CONVERSATION_PREFIX):
            return self.user
        return None


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str = Field(examples=["chatcmpl-9f2c…"])
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Epoch seconds.")
    model: str = Field(description="The `model` of the request, as sent.")
    choices: list[CompletionChoice]
    usage: CompletionUsage


class ModelObject(BaseModel):
    id: str = Field(description="The character's id, to send as `model`.")
    object: Literal["model"] = "model"
    created: int = Field(description="Epoch seconds.")
    owned_by: str = Field(description="The character's creator's username.")
    name: str = Field(description="The character's name (Personae's addition).")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
