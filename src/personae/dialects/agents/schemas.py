"""Request and response bodies of the agents API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from personae.account.money import from_micros
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
