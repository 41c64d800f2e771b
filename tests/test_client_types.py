"""The Python client's models say what the server's OpenAPI document says: every field a
model names is in the schema, and every field the schema requires is in the model. A
change to a response shape fails here until the client follows it (the TypeScript SDK's
types are generated from the same document)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from personae.client import types
from personae.dialects.agents import schemas as agents
from personae.dialects.characters import schemas as characters

SCHEMAS: dict[type[BaseModel], str] = {
    types.Character: "CharacterDetail",
    types.CharacterSummary: "CharacterSummary",
    types.Creator: "Creator",
    types.CharacterStats: "CharacterStats",
    types.LikeState: "LikeState",
    types.Lorebook: "LorebookOut",
    types.ChatMessage: "ChatMessageOut",
    types.MessageVersion: "MessageVersion",
    types.ChatConversation: "ConversationSummary",
    types.CharacterBrief: "CharacterBrief",
    types.LastMessage: "LastMessage",
    types.Favorite: "FavoriteItem",
    types.FavoriteAdded: "FavoriteAdded",
    types.User: "UserMe",
    types.Subscription: "Subscription",
    types.ChatRequests: "ChatRequests",
    types.UserStats: "UserStats",
    types.Webhook: "WebhookWithSecret",
    types.WebhookDelivery: "DeliveryOut",
    types.Model: "ModelOut",
    types.Agent: "AgentOut",
    types.Conversation: "ConversationOut",
    types.Message: "MessageOut",
    types.Image: "ImageOut",
}
# Bodies the client sends, by the keyword arguments that fill them (a character's body is
# documented inline, JSON or multipart, so the request models themselves are the reference).
BODIES: dict[object, type[BaseModel]] = {
    types.CharacterFields: characters.CharacterCreate,
    types.AgentFields: agents.AgentCreate,
    types.ImageOptions: agents.ImageCreate,
    types.TurnOptions: characters.ChatMessageCreate,
}


@pytest.fixture(scope="module")
def schemas(app: FastAPI) -> dict[str, dict[str, object]]:
    return app.openapi()["components"]["schemas"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    from personae.app import create_app

    return create_app()


@pytest.mark.parametrize("model", list(SCHEMAS), ids=lambda m: m.__name__)
def test_a_model_names_the_fields_of_its_schema(
    model: type[BaseModel], schemas: dict[str, dict[str, object]]
) -> None:
    schema = schemas[SCHEMAS[model]]
    properties = set(schema["properties"])  # type: ignore[call-overload]
    required = set(schema.get("required", []))  # type: ignore[call-overload]
    fields = set(model.model_fields)
    assert fields <= properties, f"not in {SCHEMAS[model]}: {fields - properties}"
    assert required <= fields, f"{model.__name__} lacks {required - fields}"


@pytest.mark.parametrize("params", list(BODIES), ids=lambda p: getattr(p, "__name__", ""))
def test_keyword_arguments_are_fields_of_the_body(params: object) -> None:
    assert set(params.__annotations__) <= set(BODIES[params].model_fields)
