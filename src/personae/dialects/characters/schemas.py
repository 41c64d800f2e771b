"""Request and response bodies of the characters API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from personae.api.types import Timestamp
from personae.pagination import Page


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
        return cls(
            total=page.total, page=page.request.page, limit=page.request.size, pages=page.pages
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
