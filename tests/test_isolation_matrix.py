"""The isolation matrix, generated from the route table: for every route with a path
parameter, in both dialects and with both auth headers, another account's object answers
exactly what a missing one answers (status and body, the id itself aside).

Account A owns one object of each kind (a private agent with an avatar, a conversation
with its messages, an image, a webhook); account B asks for each of them on every route,
then for a fresh id of the same shape that nothing has. A route whose path parameter this
test cannot fill fails the test, so a new route is covered as soon as it exists (add its
parameter to KINDS), never forgotten.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from conftest import MakeAccount
from helpers import bearer, x_api_key
from personae.account.service import Credentials
from personae.config import Settings
from personae.ids import new_id

HEADERS = {"Authorization: Bearer": bearer, "X-API-Key": x_api_key}
#: path parameter name -> the kind of object it names
KINDS = {
    "agent_id": "character",
    "character_id": "character",
    "conversation_id": "conversation",
    "message_id": "message",
    "image_id": "image",
    "webhook_id": "webhook",
    "key": "file",
}
#: a body each route's model accepts, so that the request reaches the lookup
BODIES: dict[str, Any] = {
    "AgentUpdate": {"name": "Renamed"},
    "ConversationUpdate": {"title": "Renamed"},
    "ConversationTitle": {"title": "Renamed"},
    "MessageEdit": {"content": "Edited"},
    "BranchCreate": {"message_id": "msg_000000000000000000000000"},
    "MessageCreate": {"content": "Hello", "max_tokens": 1},
    "ChatMessageCreate": {"message": "Hello", "max_tokens": 1},
    "RegenerateOptions": {"max_tokens": 1},
    "WebhookUpdate": {"description": "Renamed"},
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A's webhook points at loopback, which only this setting allows.
    return settings.model_copy(update={"webhook_allow_private": True})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    params: tuple[str, ...]
    body_model: str | None

    def url(self, values: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], self.path)


def routes_with_path_ids(app: FastAPI, prefix: str = "") -> list[Route]:
    """Every (method, path) of the app whose path takes a parameter (under `prefix`; the
    API's routes by default: the console's, which a session reaches and not a key, are
    walked by tests/test_console_isolation.py)."""
    found = []
    for route in iter_route_contexts(app.routes):
        params = tuple(re.findall(r"\{(\w+)(?::\w+)?\}", route.path or ""))
        if not params or not route.methods:
            continue
        if (route.path or "").startswith("/console") != prefix.startswith("/console"):
            continue
        body = route.body_field if isinstance(route.original_route, APIRoute) else None
        body_model = getattr(body.field_info.annotation, "__name__", None) if body else None
        for method in sorted(route.methods - {"HEAD"}):
            found.append(Route(method, route.path, params, body_model))
    return found


async def owned_objects(client: httpx.AsyncClient, owner: Credentials) -> dict[str, str]:
    """One object of each kind, owned by `owner`; kind -> id (or file key)."""
    headers = bearer(owner)
    agent = await client.post(
        "/api/v1/agents",
        json={"name": "Private", "sd_model_id": await _image_model(client, owner)},
        headers=headers,
    )
    assert agent.status_code == 201, agent.text
    avatar = agent.json()["avatar_url"]
    assert avatar, agent.text
    conversation = await client.post(
        "/api/v1/conversations",
        json={
            "agent_id": agent.json()["id"],
            "messages": [{"role": "user", "content": "Hi"}, {"role": "agent", "content": "Hey"}],
        },
        headers=headers,
    )
    assert conversation.status_code == 201, conversation.text
    conversation_id = conversation.json()["id"]
    messages = await client.get(
        f"/api/v1/conversations/{conversation_id}/messages", headers=headers
    )
    image = await client.post(
        "/api/v1/images", json={"prompt": "a cat", "async": True}, headers=headers
    )
    assert image.status_code == 202, image.text
    webhook = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["message.created"]},
        headers=x_api_key(owner),
    )
    assert webhook.status_code == 201, webhook.text
    return {
        "character": agent.json()["id"],
        "conversation": conversation_id,
        "message": messages.json()[-1]["id"],
        "image": image.json()["id"],
        "webhook": webhook.json()["id"],
        "file": httpx.URL(avatar).path.removeprefix("/files/"),
    }


async def _image_model(client: httpx.AsyncClient, account: Credentials) -> str:
    models = await client.get("/api/v1/models", params={"type": "sd"}, headers=bearer(account))
    return str(models.json()[0]["id"])


def missing_like(value: str) -> str:
    """A fresh id (or file key) of the same shape as `value`, that nothing has."""
    if "/" in value:  # a file key: avatars/char_…-….png
        folder, _, name = value.rpartition("/")
        _, dot, suffix = name.partition(".")
        return f"{folder}/{new_id('char')}-{secrets.token_hex(8)}{dot}{suffix}"
    return new_id(value.split("_", 1)[0])


def answer(response: httpx.Response, ids: dict[str, str]) -> tuple[int, str]:
    """Status and body, with the ids asked for replaced by their parameter's name."""
    text = response.text
    for name, value in sorted(ids.items()):
        text = text.replace(value, f"<{name}>")
    return response.status_code, text


@pytest.mark.parametrize("header", sorted(HEADERS))
async def test_another_accounts_object_answers_like_a_missing_one(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, header: str
) -> None:
    owner, other = await make_account("premium"), await make_account("premium")
    objects = await owned_objects(client, owner)
    routes = routes_with_path_ids(app)
    unknown = sorted({p for r in routes for p in r.params} - set(KINDS))
    assert not unknown, f"path parameters the matrix cannot fill (add them to KINDS): {unknown}"
    assert len(routes) >= 30  # the matrix walks the real route table, not an empty one

    headers = HEADERS[header](other)
    own = await client.post("/api/v1/conversations", json={"title": "B's"}, headers=bearer(other))
    # A route that names a message is also asked for A's message inside B's own
    # conversation: the message must be looked up within the conversation, not by id alone.
    cases = [(route, {}) for route in routes] + [
        (route, {"conversation_id": own.json()["id"]})
        for route in routes
        if "message_id" in route.params and "conversation_id" in route.params
    ]
    for route, fixed in cases:
        theirs = {p: objects[KINDS[p]] for p in route.params if p not in fixed}
        missing = {p: missing_like(v) for p, v in theirs.items()}
        theirs, missing = theirs | fixed, missing | fixed
        kwargs: dict[str, Any] = {"headers": headers}
        if route.body_model is not None:
            assert route.body_model in BODIES, f"{route.method} {route.path}: add a body to BODIES"
            kwargs["json"] = BODIES[route.body_model]
        elif route.method in ("POST", "PATCH", "PUT"):
            kwargs["json"] = {}
        got = await client.request(route.method, route.url(theirs), **kwargs)
        expected = await client.request(route.method, route.url(missing), **kwargs)
        label = f"{route.method} {route.path} ({header}{', own conversation' if fixed else ''})"
        assert got.status_code == 404, f"{label}: {got.status_code} {got.text}"
        assert answer(got, theirs) == answer(expected, missing), label

    # Nothing B asked for changed A's objects.
    agent = await client.get(f"/api/v1/agents/{objects['character']}", headers=bearer(owner))
    assert agent.json()["name"] == "Private"
    messages = await client.get(
        f"/api/v1/conversations/{objects['conversation']}/messages", headers=bearer(owner)
    )
    assert [m["content"] for m in messages.json()] == ["Hi", "Hey"]
