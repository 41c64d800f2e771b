"""Request and response bodies of the agents API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from personae.account.money import from_micros
from personae.api.types import Timestamp
from personae.character.fields import (
    Age,
    Appearance,
    Description,
    Name,
    NotNull,
    Personality,
    Tags,
    Visibility,
)
from personae.models import Model


class AgentsError(BaseModel):
    error: str = Field(examples=["Detailed error message explaining what went wrong"])


class ModelOut(BaseModel):
    id: str
    name: str
    type: str
    max_context: int | None = None
    cost_per_1k_tokens: float | None = Field(default=None, description="LLM models only.")
    cost_per_image: float | None = Field(default=None, description="Image (sd) models only.")

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
            )
        return cls(id=model.id, name=model.name, type=model.type, cost_per_image=cost)


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    appearance_prompt: Appearance = ""
    personality_prompt: Personality = ""
    description: Description = ""
    sd_model_id: str | None = Field(
        default=None, max_length=40, description="An enabled image model, for the avatar."
    )
    age: Age | None = None
    tags: Tags = []
    visibility: Visibility = Field(
        default=Visibility.PRIVATE, description="Agents are private unless made public."
    )


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[Name | None, NotNull] = None
    appearance_prompt: Annotated[Appearance | None, NotNull] = None
    personality_prompt: Annotated[Personality | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    sd_model_id: str | None = Field(default=None, max_length=40, description="null clears it.")
    age: Age | None = Field(default=None, description="null clears it.")
    tags: Annotated[Tags | None, NotNull] = None
    visibility: Annotated[Visibility | None, NotNull] = None


class AgentOut(BaseModel):
    id: str
    name: str
    appearance_prompt: str = Field(description='With "{age} years old, " in front when age is set.')
    personality_prompt: str
    description: str
    avatar_url: str | None
    age: int | None
    tags: list[str]
    visibility: Visibility
    sd_model_id: str | None
    created_at: Timestamp
