"""`Idempotency-Key` on POST, through both dialects, on SQLite and PostgreSQL: a retry gets
the first answer back without the work running again (no second message, answer, charge,
image or webhook event), another request with the key is 409, a retry while the first runs
is 409 and starts nothing, keys belong to an account and expire after a day, and a key
whose request failed or whose server died can be used again.

Answers come from a scripted OpenAI-compatible server on loopback that counts the
generations it was asked for, and can hold them (to catch a retry in flight) or fail."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from conftest import MakeAccount
from helpers import (
    agents_error,
    bearer,
    characters_error,
    json_post_scope,
    leave_after_first_chunk,
    rate_limit_headers,
    wait_for,
    x_api_key,
)
from images import png
from llm_servers import serving
from personae.config import Settings
from personae.conversation.turns import TurnLedger
from personae.db.base import utcnow
from personae.model.service import ModelService, ModelType
from personae.models import IdempotencyKey
from personae.state import AppState
from test_images import placeholder_id
from test_webhooks import deliveries, register
from webhook_receiver import Receiver, receiver

ANSWER = ["Hello", " there,", " traveller."]
CHAR = {"name": "Vexa", "description": "A courier", "personality": "Dry", "background": "Docks"}
AGENT = {"name": "Advisor", "personality_prompt": "Patient"}
TURN = {"message": "Who are you?", "max_tokens": 16}
REPLAYED = "Idempotent-Replayed"


@dataclass
class ScriptedLLM:
    """An OpenAI-compatible chat server that streams ANSWER, `pause` seconds a piece.
    `generations` counts the requests it got; it answers once `gate` is set, and 500 while
    `fail` is."""

    base: str = ""
    generations: int = 0
    fail: bool = False
    pause: float = 0
    gate: threading.Event = field(default_factory=threading.Event)

    async def complete(self, request: Request) -> Response:
        await request.json()
        self.generations += 1
        await asyncio.to_thread(self.gate.wait, 30)
        if self.fail:
            return JSONResponse({"error": {"message": "model crashed"}}, status_code=500)

        async def events() -> AsyncIterator[str]:
            for piece in ANSWER:
                await asyncio.sleep(self.pause)
                chunk = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            usage = {"prompt_tokens": 40, "completion_tokens": len(ANSWER)}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM()
    server.gate.set()
    app = Starlette(routes=[Route("/v1/chat/completions", server.complete, methods=["POST"])])
    with serving(app) as base:
        server.base = base
        yield server


@pytest.fixture
async def llm(app: FastAPI, llm_server: ScriptedLLM) -> str:
    """A priced model on the scripted server, the only enabled one."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        for model in await service.list_enabled(ModelType.LLM):
            await service.set_enabled(model.id, False)
        settings = {"base_url": f"{llm_server.base}/v1", "model": "scripted"}
        model = await service.register(ModelType.LLM, "Scripted", "openai", settings, cost="1")
        return model.id


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return headers | {"Idempotency-Key": key}


def sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def new_character(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/v1/user/me", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_replay(retry: httpx.Response, first: httpx.Response) -> None:
    assert retry.status_code == first.status_code, retry.text
    assert retry.content == first.content
    assert retry.headers[REPLAYED] == "true"
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert REPLAYED not in first.headers
    rate_limit_headers(retry)  # a replay is an authenticated response like any other


async def test_a_retried_chat_message_is_answered_and_charged_once(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    llm: str,
    llm_server: ScriptedLLM,
    hooks: Receiver,
) -> None:
    creds = await make_account("premium", balance="10")
    plain = x_api_key(creds)
    hook = await register(client, creds, hooks.base + "/hook", ["message.created"])
    char = await new_character(client, plain)
    path = f"/v1/chat/{char}/messages"

    first = await client.post(path, json=TURN, headers=keyed(plain, "chat-1"))
    assert first.status_code == 200, first.text
    assert first.json()["content"] == "".join(ANSWER)
    charged = await me(client, plain)
    assert charged["balance"] < 10
    assert charged["subscription"]["chat_requests"]["used"] == 1
    events = await deliveries(client, creds, hook["id"])
    assert len(events) == 2  # the user's message and the answer

    for _ in range(2):
        assert_replay(await client.post(path, json=TURN, headers=keyed(plain, "chat-1")), first)
    assert llm_server.generations == 1
    assert await me(client, plain) == charged
    conversation = first.json()["conversation_id"]
    messages = await client.get(f"/v1/chat/conversations/{conversation}/messages", headers=plain)
    assert messages.json()["pagination"]["total"] == 2
    assert len(await deliveries(client, creds, hook["id"])) == 2

    # Another key is another request: it runs.
    second = await client.post(
        path, json=TURN | {"conversation_id": conversation}, headers=keyed(plain, "chat-2")
    )
    assert second.status_code == 200, second.text
    assert REPLAYED not in second.headers
    assert llm_server.generations == 2


async def test_agents_api_conversation_turn_and_image_run_once(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str, llm_server: ScriptedLLM
) -> None:
    creds = await make_account("standard", balance="10")
    plain = bearer(creds)
    body = {"title": "Money", "llm_id": llm}
    created = await client.post("/api/v1/conversations", json=body, headers=keyed(plain, "c"))
    assert created.status_code == 201, created.text
    assert_replay(
        await client.post("/api/v1/conversations", json=body, headers=keyed(plain, "c")), created
    )
    listed = await client.get("/api/v1/conversations", headers=plain)
    assert [c["id"] for c in listed.json()] == [created.json()["id"]]
    conversation = created.json()["id"]

    path = f"/api/v1/conversations/{conversation}/messages"
    turn = {"content": "Should I save?", "max_tokens": 16}
    reply = await client.post(path, json=turn, headers=keyed(plain, "t"))
    assert reply.status_code == 200, reply.text
    assert_replay(await client.post(path, json=turn, headers=keyed(plain, "t")), reply)
    assert llm_server.generations == 1

    image = {"prompt": "a map", "sd_model_id": await placeholder_id(client, creds),
             "conversation_id": conversation, "width": 64, "height": 64}  # fmt: skip
    made = await client.post("/api/v1/images", json=image, headers=keyed(plain, "i"))
    assert made.status_code == 201, made.text
    assert_replay(await client.post("/api/v1/images", json=image, headers=keyed(plain, "i")), made)
    images = (await client.get("/api/v1/images", headers=plain)).json()
    assert [i["id"] for i in images["data"]] == [made.json()["id"]]
    history = (await client.get(path, headers=plain)).json()
    assert [m["role"] for m in history] == ["user", "agent", "agent"]  # the image's message


async def test_a_streamed_turn_retried_replays_its_final_message(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str, llm_server: ScriptedLLM
) -> None:
    creds = await make_account(balance="10")
    headers = keyed(x_api_key(creds), "stream-1")
    path = f"/v1/chat/{await new_character(client, x_api_key(creds))}/messages"
    body = TURN | {"stream": True}
    first = await client.post(path, json=body, headers=headers)
    assert first.status_code == 200, first.text
    events = sse(first.text)
    assert [name for name, _ in events] == ["delta"] * len(ANSWER) + ["message"]
    message = events[-1][1]
    assert message["content"] == "".join(ANSWER)

    retry = await client.post(path, json=body, headers=headers)
    assert retry.status_code == 200
    assert retry.headers[REPLAYED] == "true"
    assert retry.headers["content-type"].startswith("text/event-stream")
    assert sse(retry.text) == [("delta", {"content": "".join(ANSWER)}), ("message", message)]
    assert llm_server.generations == 1
    conversation = message["conversation_id"]
    messages = await client.get(
        f"/v1/chat/conversations/{conversation}/messages", headers=x_api_key(creds)
    )
    assert messages.json()["pagination"]["total"] == 2


@pytest.mark.parametrize("spec_version", ["2.0", "2.4"])
async def test_a_stream_cut_short_leaves_its_key_free(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    llm: str,
    llm_server: ScriptedLLM,
    spec_version: str,
) -> None:
    """The client goes away after the first event (a disconnect message before ASGI 2.4, a
    failing send after): the turn is released, and a retry with the key runs it again."""
    creds = await make_account(balance="10")
    path = f"/v1/chat/{await new_character(client, x_api_key(creds))}/messages"
    body = TURN | {"stream": True}
    llm_server.pause = 0.5
    scope = json_post_scope(path, creds, spec_version)
    scope["headers"].append((b"idempotency-key", b"cut"))
    # ClientDisconnect: how Starlette reports the failing send.
    assert await leave_after_first_chunk(app, scope, json.dumps(body).encode(), (ClientDisconnect,))
    llm_server.pause = 0
    retry = await client.post(path, json=body, headers=keyed(x_api_key(creds), "cut"))
    assert retry.status_code == 200, retry.text
    assert REPLAYED not in retry.headers
    assert sse(retry.text)[-1][1]["content"] == "".join(ANSWER)
    assert llm_server.generations == 2


async def test_a_retry_while_the_first_runs_is_409_and_starts_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str, llm_server: ScriptedLLM
) -> None:
    creds = await make_account(balance="10")
    headers = keyed(x_api_key(creds), "slow")
    path = f"/v1/chat/{await new_character(client, x_api_key(creds))}/messages"
    llm_server.gate.clear()  # the first generation waits

    async def retry_while_running() -> httpx.Response:
        try:
            await wait_for(lambda: llm_server.generations == 1)
            return await client.post(path, json=TURN, headers=headers)
        finally:
            llm_server.gate.set()

    first, retry = await asyncio.gather(
        client.post(path, json=TURN, headers=headers), retry_while_running()
    )
    error = characters_error(retry, 409, "idempotency_key_in_use")
    assert "still being processed" in error["message"]
    assert retry.headers["Retry-After"] == "1"
    rate_limit_headers(retry)
    assert first.status_code == 200, first.text
    assert_replay(await client.post(path, json=TURN, headers=headers), first)
    assert llm_server.generations == 1
    usage = (await me(client, x_api_key(creds)))["subscription"]["chat_requests"]
    assert usage["used"] == 1


async def test_concurrent_requests_with_one_key_create_one_agent(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium")
    headers = keyed(bearer(creds), "race")
    responses = await asyncio.gather(
        *(client.post("/api/v1/agents", json=AGENT, headers=headers) for _ in range(4))
    )
    originals = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
    assert len(originals) == 1, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert "still being processed" in agents_error(response, 409)
        elif response is not originals[0]:
            assert_replay(response, originals[0])
    agents = (await client.get("/api/v1/agents", headers=bearer(creds))).json()
    assert [a["id"] for a in agents] == [originals[0].json()["id"]]


async def test_the_same_key_for_another_request_is_409_in_each_dialect(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    headers = keyed(x_api_key(creds), "k1")
    first = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert first.status_code == 201, first.text

    other_body = await client.post("/v1/characters", json=CHAR | {"name": "Nell"}, headers=headers)
    error = characters_error(other_body, 409, "idempotency_key_reused")
    assert error["message"] == (
        "This Idempotency-Key was already used with another body; send a new key for a new request"
    )
    other_path = await client.post("/api/v1/agents", json=CHAR, headers=headers)
    assert agents_error(other_path, 409) == (
        "This Idempotency-Key was already used for POST /v1/characters; "
        "send a new key for a new request"
    )
    # The same JSON written another way is the same request.
    spaced = json.dumps(dict(reversed(list(CHAR.items()))), indent=2)
    same = await client.post(
        "/v1/characters", content=spaced, headers=headers | {"Content-Type": "application/json"}
    )
    assert_replay(same, first)

    agent = await client.post("/api/v1/agents", json=AGENT, headers=keyed(bearer(creds), "k2"))
    assert agent.status_code == 201, agent.text
    changed = await client.post(
        "/api/v1/agents", json=AGENT | {"name": "Other"}, headers=keyed(bearer(creds), "k2")
    )
    assert "another body" in agents_error(changed, 409)
    assert (await me(client, x_api_key(creds)))["stats"]["characters_created"] == 2


async def test_a_multipart_retry_encoded_afresh_is_the_same_request(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    headers = keyed(x_api_key(creds), "upload")
    image = png()

    async def upload() -> httpx.Response:
        # httpx picks a new multipart boundary for every request it encodes.
        files = {"image": ("a.png", image, "image/png")}
        return await client.post("/v1/characters", data=CHAR, files=files, headers=headers)

    first = await upload()
    assert first.status_code == 201, first.text
    assert_replay(await upload(), first)
    assert (await me(client, x_api_key(creds)))["stats"]["characters_created"] == 1


async def test_keys_belong_to_their_account(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    one, two = await make_account(), await make_account()
    first = await client.post("/v1/characters", json=CHAR, headers=keyed(x_api_key(one), "same"))
    other = await client.post("/v1/characters", json=CHAR, headers=keyed(x_api_key(two), "same"))
    assert (first.status_code, other.status_code) == (201, 201)
    assert REPLAYED not in other.headers
    assert other.json()["id"] != first.json()["id"]
    # Another account's body under the same key is no conflict either.
    third = await client.post(
        "/api/v1/agents", json=AGENT, headers=keyed(bearer(await make_account()), "same")
    )
    assert third.status_code == 201, third.text
    retry = await client.post("/v1/characters", json=CHAR, headers=keyed(x_api_key(one), "same"))
    assert_replay(retry, first)


async def test_keys_expire_after_a_day(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    creds = await make_account()
    headers = keyed(x_api_key(creds), "ttl")
    first = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert first.status_code == 201, first.text

    assert await state.idempotency.sweep(utcnow() + timedelta(hours=23, minutes=59)) == 0
    assert_replay(await client.post("/v1/characters", json=CHAR, headers=headers), first)
    assert await state.idempotency.sweep(utcnow() + timedelta(hours=24, seconds=1)) == 1
    again = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert again.status_code == 201, again.text
    assert REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]

    # Expired but not swept yet: the key is free all the same, for any body.
    async with state.sessionmaker.begin() as session:
        await session.execute(
            update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    renamed = await client.post("/v1/characters", json=CHAR | {"name": "Nell"}, headers=headers)
    assert renamed.status_code == 201, renamed.text
    assert REPLAYED not in renamed.headers
    assert (await me(client, x_api_key(creds)))["stats"]["characters_created"] == 3


async def test_a_failed_request_leaves_its_key_free(
    client: httpx.AsyncClient, make_account: MakeAccount, llm: str, llm_server: ScriptedLLM
) -> None:
    creds = await make_account(balance="10")
    headers = keyed(x_api_key(creds), "flaky")
    path = f"/v1/chat/{await new_character(client, x_api_key(creds))}/messages"
    llm_server.fail = True
    characters_error(await client.post(path, json=TURN, headers=headers), 502, "engine_error")
    llm_server.fail = False
    retried = await client.post(path, json=TURN, headers=headers)
    assert retried.status_code == 200, retried.text
    assert REPLAYED not in retried.headers
    assert llm_server.generations == 2
    assert_replay(await client.post(path, json=TURN, headers=headers), retried)
    usage = (await me(client, x_api_key(creds)))["subscription"]["chat_requests"]
    assert usage["used"] == 1  # the failed turn was given back

    # A refused request (400) did nothing either: the key then goes with a valid body.
    key = keyed(x_api_key(creds), "fix-it")
    characters_error(
        await client.post("/v1/characters", json=CHAR | {"name": ""}, headers=key),
        400,
        "invalid_request",
    )
    fixed = await client.post("/v1/characters", json=CHAR, headers=key)
    assert fixed.status_code == 201, fixed.text


async def test_a_key_held_by_a_server_that_died_can_be_used_again(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    state: AppState = app.state.personae
    creds = await make_account()
    headers = keyed(x_api_key(creds), "orphan")
    first = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert first.status_code == 201, first.text

    async def running_on(instance_id: str) -> None:
        async with state.sessionmaker.begin() as session:
            await session.execute(
                update(IdempotencyKey).values(state="running", instance_id=instance_id)
            )

    # Another server, alive, is running the request: a retry waits its turn.
    other = TurnLedger(state.sessionmaker, state.writer, state.settings.turn_heartbeat_seconds)
    await other.beat()
    await running_on(other.instance_id)
    busy = await client.post("/v1/characters", json=CHAR, headers=headers)
    characters_error(busy, 409, "idempotency_key_in_use")
    # That server stopped beating (killed mid-request): its work is gone, the key is free.
    await running_on("inst_gone")
    again = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert again.status_code == 201, again.text
    assert REPLAYED not in again.headers
    assert_replay(await client.post("/v1/characters", json=CHAR, headers=headers), again)


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_an_empty_or_too_long_key_is_400(
    client: httpx.AsyncClient, make_account: MakeAccount, key: str
) -> None:
    creds = await make_account()
    refused = await client.post("/v1/characters", json=CHAR, headers=keyed(x_api_key(creds), key))
    error = characters_error(refused, 400, "invalid_request")
    assert error["message"] == "Idempotency-Key: 1 to 255 printable ASCII characters"
    assert error["details"] == {"header": "Idempotency-Key", "max_length": 255}
    refused = await client.post("/api/v1/agents", json=AGENT, headers=keyed(bearer(creds), key))
    assert "Idempotency-Key" in agents_error(refused, 400)
    longest = await client.post(
        "/v1/characters", json=CHAR, headers=keyed(x_api_key(creds), "k" * 255)
    )
    assert longest.status_code == 201, longest.text
    assert (await me(client, x_api_key(creds)))["stats"]["characters_created"] == 1


@pytest.mark.parametrize(
    "body", [b'{"name": ', b"[" * 100_000 + b"]" * 100_000], ids=["malformed", "deep"]
)
async def test_a_body_that_is_not_json_gets_the_routes_answer(
    client: httpx.AsyncClient, make_account: MakeAccount, body: bytes
) -> None:
    headers = keyed(x_api_key(await make_account()), "bad-json")
    headers["Content-Type"] = "application/json"
    refused = await client.post("/v1/characters", content=body, headers=headers)
    characters_error(refused, 400, "invalid_request")
    created = await client.post("/v1/characters", json=CHAR, headers=headers)
    assert created.status_code == 201, created.text


async def test_without_a_valid_api_key_the_route_answers_401(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k", "X-API-Key": "nope"}
    characters_error(await client.post("/v1/characters", json=CHAR, headers=headers), 401,
                     "unauthorized")  # fmt: skip
