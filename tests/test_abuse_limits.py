"""Abuse limits, at the HTTP boundary of both dialects and on both backends: a bounded `page`
on every list, text without control characters (and names with something visible), path
and query parameters likewise, tags that say what they hold, a cap on request headers,
per-account caps, and the time and token caps of a turn."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from conftest import MakeAccount
from helpers import agents_error, bearer, characters_error, wait_for, x_api_key
from image_servers import ImageServer, Script, image_server
from llm_servers import TRICKLE_CLOSED, failing_server
from personae.account.service import Credentials
from personae.config import Settings
from personae.model.service import ModelService, ModelType
from personae.pagination import MAX_PAGE
from test_images import a1111_settings, add_sd_model

CAPS = {
    "max_characters_per_account": 3,
    "max_conversations_per_account": 2,
    "max_webhooks_per_account": 2,
    "max_queued_images_per_account": 2,
}
GENERATION_SECONDS = 1.0
CARD = {"description": "A courier", "personality": "Calm", "background": "The docks"}
NUL = "\u0000"
# Names that show nothing, or show something other than what they hold.
INVISIBLE_NAMES = [
    "\u200b\u200c\u200d",  # zero-width space, non-joiner, joiner
    "\u2060\ufeff",  # word joiner, zero-width no-break space
    "\u3164",  # Hangul filler
    "\U000e0041\U000e0042",  # tag characters
    " \u00a0\u3000 ",  # white space only
]
SPOOFING_NAMES = ["\u202eexe.txt", "Bob\u2066", "a\u0007b", "tab\there", "two\nlines", "a\x7fb"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small caps, so that each is reached with a few requests; a short generation limit;
    webhooks to loopback; one image job at a time (a second waits, pending)."""
    return settings.model_copy(
        update=CAPS
        | {
            "max_generation_seconds": GENERATION_SECONDS,
            "webhook_allow_private": True,
            "worker_concurrency": 1,
        }
    )


@pytest.fixture(scope="module")
def llm_server() -> Iterator[str]:
    with failing_server() as base:
        yield base


async def only_llm(app: FastAPI, base_url: str, **settings: Any) -> str:
    """A remote model at `base_url`, made the only enabled LLM (the default)."""
    async with app.state.personae.sessionmaker.begin() as session:
        service = ModelService(session)
        for model in await service.list_enabled(ModelType.LLM):
            await service.set_enabled(model.id, False)
        config = {"base_url": base_url, "model": "m", **settings}
        return (await service.register(ModelType.LLM, "remote", "openai", config)).id


def headers_for(path: str, creds: Credentials) -> dict[str, str]:
    return bearer(creds) if path.startswith("/api/v1") else x_api_key(creds)


def error_message(response: httpx.Response, status: int) -> str:
    """The message of an error in the shape of the dialect of the request's path."""
    if response.request.url.path.startswith("/api/v1"):
        return agents_error(response, status)
    body = response.json()["error"]
    assert response.status_code == status, response.text
    assert body["status"] == status
    return str(body["message"])


async def create_character(
    client: httpx.AsyncClient, creds: Credentials, **fields: Any
) -> httpx.Response:
    body = CARD | {"name": "Vexa"} | fields
    return await client.post("/v1/characters", json=body, headers=x_api_key(creds))


async def post_form(
    client: httpx.AsyncClient, creds: Credentials, fields: dict[str, str]
) -> httpx.Response:
    """`POST /v1/characters` as a multipart form of text fields (no image)."""
    boundary = "personae-test-boundary"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    body = (parts + f"--{boundary}--\r\n").encode()
    headers = x_api_key(creds) | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return await client.post("/v1/characters", content=body, headers=headers)


@dataclass(frozen=True)
class Served:
    """An API route as the app serves it: its full path (routers' prefixes included)."""

    path: str
    method: str
    dependant: Dependant


def routes(app: FastAPI) -> list[Served]:
    served = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            assert route.path is not None
            assert route.methods is not None
            [method] = route.methods  # each route takes one method
            served.append(Served(route.path, method, route.dependant))
    return served


# pages
async def test_every_list_bounds_its_page(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """Every route with a `page` parameter, found in the route table: a page past MAX_PAGE
    (and `?page=10**20`, which overflowed the offset) is 400 naming `page`; MAX_PAGE itself
    is an empty page; the OpenAPI document states the same maximum."""
    creds = await make_account("premium")
    character = (await create_character(client, creds)).json()["id"]
    conversation = await client.post(
        "/api/v1/conversations", json={"agent_id": character}, headers=bearer(creds)
    )
    webhook = await client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["character.created"]},
        headers=x_api_key(creds),
    )
    ids = {
        "character_id": character,
        "conversation_id": conversation.json()["id"],
        "webhook_id": webhook.json()["id"],
    }
    # The API's lists (the console's pages are HTML: tests/test_console.py).
    listed = [
        r
        for r in routes(app)
        if any(p.name == "page" for p in r.dependant.query_params)
        and not r.path.startswith("/console")
    ]
    paths = {r.path for r in listed}
    assert {"/api/v1/agents", "/v1/characters", "/v1/webhooks/{webhook_id}/deliveries"} <= paths
    assert len(listed) >= 10
    document = app.openapi()["paths"]
    for route in listed:
        path = route.path.format(**ids)
        headers = headers_for(path, creds)
        for page in (10**20, MAX_PAGE + 1, 0):
            response = await client.get(path, params={"page": page}, headers=headers)
            assert "page" in error_message(response, 400), path
        deepest = await client.get(path, params={"page": MAX_PAGE}, headers=headers)
        assert deepest.status_code == 200, (path, deepest.text)
        body = deepest.json()
        assert (body["data"] if isinstance(body, dict) else body) == []
        [page] = [p for p in document[route.path][route.method.lower()]["parameters"]
                  if p["name"] == "page"]  # fmt: skip
        assert page["schema"]["maximum"] == MAX_PAGE, route.path


# text
async def test_nul_and_control_characters_are_refused_in_every_kind_of_field(
    client: httpx.AsyncClient, make_account: MakeAccount, llm_server: str, app: FastAPI
) -> None:
    """A NUL byte in a name, tag, title, message or id is 400 naming the field, on SQLite
    (which would store it) as on PostgreSQL (which cannot): nothing is written, no 500."""
    await only_llm(app, f"{llm_server}/scripted/v1")
    creds = await make_account("premium")
    character = (await create_character(client, creds)).json()["id"]
    conversation = (
        await client.post("/api/v1/conversations", json={}, headers=bearer(creds))
    ).json()["id"]
    refused = [
        ("POST", "/v1/characters", CARD | {"name": f"Ve{NUL}xa"}, "name"),
        ("POST", "/v1/characters", CARD | {"name": "Vexa", "tags": [f"a{NUL}"]}, "tags[0]"),
        ("POST", "/v1/characters", CARD | {"name": "Vexa", "description": f"x{NUL}"}, "desc"),
        ("POST", "/api/v1/agents", {"name": f"{NUL}"}, "name"),
        ("POST", "/api/v1/agents", {"name": "A", "personality_prompt": "\x1b[31m"}, "person"),
        ("PATCH", f"/v1/characters/{character}", {"tags": ["ok", f"no{NUL}"]}, "tags[1]"),
        ("PATCH", f"/api/v1/agents/{character}", {"greeting": f"Hi{NUL}"}, "greeting"),
        ("POST", "/api/v1/conversations", {"title": f"t{NUL}"}, "title"),
        ("POST", "/api/v1/conversations", {"agent_id": f"char_{NUL}"}, "agent_id"),
        ("PATCH", f"/api/v1/conversations/{conversation}", {"title": f"t{NUL}"}, "title"),
        ("PATCH", f"/api/v1/conversations/{conversation}", {"title": "a\nb"}, "title"),
        ("POST", f"/api/v1/conversations/{conversation}/messages", {"content": NUL}, "content"),
        ("POST", f"/v1/chat/{character}/messages", {"message": f"hi{NUL}"}, "message"),
        (
            "POST",
            f"/v1/chat/{character}/messages",
            {"message": "hi", "conversation_id": f"conv_{NUL}"},
            "conversation_id",
        ),
        ("POST", "/api/v1/images", {"prompt": f"a{NUL}fox"}, "prompt"),
        (
            "POST",
            "/v1/webhooks",
            {"url": f"http://127.0.0.1:9/{NUL}", "events": ["character.created"]},
            "url",
        ),
    ]
    for method, path, body, field in refused:
        response = await client.request(method, path, json=body, headers=headers_for(path, creds))
        message = error_message(response, 400)
        assert field in message, (path, body, message)
        assert "U+00" in message or "U+007F" in message, message
    # A lone surrogate (which Python's JSON reader lets through) is refused too.
    surrogate = b'{"name": "Bob\\ud800"}'
    response = await client.post(
        "/api/v1/agents",
        content=surrogate,
        headers=bearer(creds) | {"content-type": "application/json"},
    )
    assert "surrogate" in agents_error(response, 400)
    # Nothing of the above was written.
    agents = (await client.get("/api/v1/agents", headers=bearer(creds))).json()
    assert [a["name"] for a in agents] == ["Vexa"]
    assert (agents[0]["tags"], agents[0]["greeting"]) == ([], "")
    conversations = (await client.get("/api/v1/conversations", headers=bearer(creds))).json()
    assert [(c["id"], c["title"], c["message_count"]) for c in conversations] == [
        (conversation, "", 0)
    ]
    # Free text keeps its line breaks and tabs.
    kept = await create_character(client, creds, description="line one\n\tline two\r\n")
    assert kept.status_code == 201, kept.text
    assert kept.json()["description"] == "line one\n\tline two\r\n"


async def test_names_need_a_visible_character_and_no_bidi_controls(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    for name in INVISIBLE_NAMES:
        for response in (
            await create_character(client, creds, name=name),
            await client.post("/api/v1/agents", json={"name": name}, headers=bearer(creds)),
        ):
            assert "visible character" in error_message(response, 400), name
    for name in SPOOFING_NAMES:
        response = await create_character(client, creds, name=name)
        assert "name" in error_message(response, 400), name
        response = await client.post("/api/v1/agents", json={"name": name}, headers=bearer(creds))
        assert "name" in agents_error(response, 400), name
    # In a multipart form, and as a tag.
    response = await post_form(client, creds, CARD | {"name": "\u200b"})
    assert "visible character" in error_message(response, 400)
    response = await create_character(client, creds, tags=["\u200b"])
    assert "tags[0]" in error_message(response, 400)
    assert (await client.get("/api/v1/agents", headers=bearer(creds))).json() == []
    # What is visible is accepted, in any script, marks included (an account each: the
    # module's cap on characters is small).
    for name in ("Zoë", "日本", "مرحبا", "\u0301", "A\u200bB", "🙂"):
        response = await create_character(client, await make_account(), name=name)
        assert response.status_code == 201, (name, response.text)
        assert response.json()["name"] == name
    made = await client.post("/api/v1/agents", json={"name": "  Vexa  "}, headers=bearer(creds))
    assert made.json()["name"] == "Vexa"


async def test_control_characters_in_path_and_query_parameters(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """Every route with a path parameter, found in the route table, answers an id holding
    NUL, a line break or a bidi override with 400 naming the parameter, the same on both
    backends (PostgreSQL answered 500 for NUL, SQLite 404)."""
    creds = await make_account("premium")
    with_ids = [r for r in routes(app) if "{" in r.path]
    assert len(with_ids) >= 30
    for route in with_ids:
        for bad in ("%00", "%0A", "%E2%80%AE", "%1B"):
            path = re.sub(r"\{(\w+)(:\w+)?\}", f"x{bad}y", route.path)
            response = await client.request(route.method, path, headers=headers_for(path, creds))
            if route.path.startswith(("/api/v1/", "/v1/")):
                message = error_message(response, 400)
                first = re.search(r"\{(\w+)", route.path)
                assert first is not None
                assert message.startswith(f"{first.group(1)}: must not contain"), message
            elif route.path.startswith("/console/"):  # the same refusal, as a page
                assert response.status_code == 400, (path, response.text)
                assert "must not contain" in response.text, path
            else:  # /files/{key}: a key that names nothing
                assert response.status_code == 404, (path, response.text)
    for path in ("/v1/characters?tags=a%00", "/v1/chat/conversations?character_id=%00x"):
        response = await client.get(path, headers=x_api_key(creds))
        assert "control characters" in error_message(response, 400)
    # A key of the right shape holding NUL is an unknown key, never looked up.
    forged = "prs_" + NUL * (len(creds.plaintext) - 4)
    for path, header in (("/v1/user/me", "X-API-Key"), ("/api/v1/agents", "Authorization")):
        value = forged if header == "X-API-Key" else f"Bearer {forged}"
        error_message(await client.get(path, headers={header: value}), 401)


# tags
async def test_tags_say_what_they_hold(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """1,000 commas are not "no tags" but 400; an empty tag between commas is 400; deep
    nesting in a form's JSON array is 400 (it was a RecursionError), as it is in JSON."""
    creds = await make_account()
    form = CARD | {"name": "Vexa"}
    for tags in ("," * 1000, "a,,b", "a,", ",a", " , "):
        response = await post_form(client, creds, form | {"tags": tags})
        assert "tags" in error_message(response, 400), tags
    response = await create_character(client, creds, tags=[""] * 1000)
    assert "tags" in error_message(response, 400)
    for key in ("tags", "alternate_greetings"):
        deep = "[" * 100_000 + "]" * 100_000
        response = await post_form(client, creds, form | {key: deep})
        assert f"{key}: not a valid JSON array" in error_message(response, 400)
    deep_json = '{"name": "x", "tags": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for path in ("/v1/characters", "/api/v1/agents"):
        response = await client.post(
            path,
            content=deep_json,
            headers=headers_for(path, creds) | {"content-type": "application/json"},
        )
        error_message(response, 400)
    for query in (",,,,", "a,,b"):
        response = await client.get(f"/v1/characters?tags={query}", headers=x_api_key(creds))
        assert error_message(response, 400).startswith("tags[")
    made = await post_form(client, creds, form | {"tags": "a, b ,A"})
    assert made.json()["tags"] == ["a", "b"]
    listed = (await client.get("/api/v1/agents", headers=bearer(creds))).json()
    assert len(listed) == 1


# headers
async def test_request_headers_over_the_cap_are_431(
    client: httpx.AsyncClient, make_account: MakeAccount, settings: Settings
) -> None:
    creds = await make_account()
    cap = settings.max_header_bytes
    assert cap == 16 * 1024  # the default
    big = {"x-padding": "p" * cap}
    agents = await client.get("/api/v1/agents", headers=bearer(creds) | big)
    assert "PERSONAE_MAX_HEADER_BYTES" in agents_error(agents, 431)
    error = characters_error(
        await client.get("/v1/characters", headers=x_api_key(creds) | big),
        431,
        "request_header_fields_too_large",
    )
    assert error["details"] == {"limit": "max_header_bytes", "max": cap}
    # Many headers count together; just under the cap is served.
    many = {f"x-h{i}": "v" * 1000 for i in range(20)}
    agents_error(await client.get("/api/v1/agents", headers=bearer(creds) | many), 431)
    under = {"x-padding": "p" * (cap - 1000)}
    assert (await client.get("/api/v1/agents", headers=bearer(creds) | under)).status_code == 200


# per-account caps
def cap_error(response: httpx.Response, limit: str) -> dict[str, Any]:
    """A per-account cap's 429 in either dialect; the characters API's details."""
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"].isdigit()
    setting = f"PERSONAE_MAX_{limit.upper()}"
    if response.request.url.path.startswith("/api/v1"):
        assert setting in agents_error(response, 429)
        return {}
    error = characters_error(response, 429, "rate_limited")
    assert setting in error["message"]
    assert error["details"] == {
        "limit": limit,
        "max": CAPS[f"max_{limit}"],
        "setting": setting,
    }
    return error


async def test_characters_per_account_cap_holds_under_concurrency(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    responses = await asyncio.gather(
        *(create_character(client, creds, name=f"C{i}") for i in range(8))
    )
    assert sorted(r.status_code for r in responses) == [201] * 3 + [429] * 5
    cap_error(next(r for r in responses if r.status_code == 429), "characters_per_account")
    cap_error(
        await client.post("/api/v1/agents", json={"name": "One more"}, headers=bearer(creds)),
        "characters_per_account",
    )
    assert len((await client.get("/api/v1/agents", headers=bearer(creds))).json()) == 3
    # The cap is per account, and deleting makes room.
    assert (await create_character(client, other)).status_code == 201
    first = (await client.get("/api/v1/agents", headers=bearer(creds))).json()[0]["id"]
    await client.delete(f"/api/v1/agents/{first}", headers=bearer(creds))
    assert (await create_character(client, creds)).status_code == 201


async def test_conversations_per_account_cap_on_every_way_to_start_one(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm_server: str
) -> None:
    await only_llm(app, f"{llm_server}/scripted/v1")
    creds = await make_account()
    character = (await create_character(client, creds)).json()["id"]
    made = await asyncio.gather(
        *(client.post("/api/v1/conversations", json={}, headers=bearer(creds)) for _ in range(5))
    )
    assert sorted(r.status_code for r in made) == [201] * 2 + [429] * 3
    cap_error(next(r for r in made if r.status_code == 429), "conversations_per_account")
    conversation = next(r for r in made if r.status_code == 201).json()["id"]
    await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": "Hi"},
        headers=bearer(creds),
    )
    message = (
        await client.get(f"/api/v1/conversations/{conversation}/messages", headers=bearer(creds))
    ).json()[0]["id"]
    branch = await client.post(
        f"/api/v1/conversations/{conversation}/branch",
        json={"message_id": message},
        headers=bearer(creds),
    )
    cap_error(branch, "conversations_per_account")
    chat = await client.post(
        f"/v1/chat/{character}/messages", json={"message": "Hello"}, headers=x_api_key(creds)
    )
    cap_error(chat, "conversations_per_account")
    listed = (await client.get("/api/v1/conversations", headers=bearer(creds))).json()
    assert len(listed) == 2
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["subscription"]["chat_requests"]["used"] == 1  # the refused chat cost nothing


async def test_webhooks_per_account_cap(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium")
    body = {"url": "http://127.0.0.1:9/hook", "events": ["character.created"]}
    made = await asyncio.gather(
        *(client.post("/v1/webhooks", json=body, headers=x_api_key(creds)) for _ in range(4))
    )
    assert sorted(r.status_code for r in made) == [201, 201, 429, 429]
    cap_error(next(r for r in made if r.status_code == 429), "webhooks_per_account")
    listed = (await client.get("/v1/webhooks", headers=x_api_key(creds))).json()
    assert listed["pagination"]["total"] == 2


@pytest.fixture
def slow_images() -> Iterator[ImageServer]:
    """An image server that takes 2 s for each of its first two images."""
    with image_server() as server:
        server.script = Script(hang_first=2, hang_seconds=2)
        yield server


async def test_queued_images_per_account_cap(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, slow_images: ImageServer
) -> None:
    """Two jobs of the account pending or running: a third is 429 (avatars count too);
    once one finishes, there is room again."""
    sd = await add_sd_model(app, "automatic1111", a1111_settings(slow_images))
    creds = await make_account()
    order = {"prompt": "a fox", "sd_model_id": sd, "async": True}
    first = await client.post("/api/v1/images", json=order, headers=bearer(creds))
    second = await client.post("/api/v1/images", json=order, headers=bearer(creds))
    assert (first.status_code, second.status_code) == (202, 202)
    third = await client.post("/api/v1/images", json=order, headers=bearer(creds))
    cap_error(third, "queued_images_per_account")
    assert third.headers["Retry-After"] == "10"
    avatar = await client.post(
        "/api/v1/agents", json={"name": "Vexa", "sd_model_id": sd}, headers=bearer(creds)
    )
    cap_error(avatar, "queued_images_per_account")
    assert (await client.get("/api/v1/agents", headers=bearer(creds))).json() == []

    async def status(image_id: str) -> str:
        got = await client.get(f"/api/v1/images/{image_id}", headers=bearer(creds))
        return str(got.json()["status"])

    deadline = time.monotonic() + 30
    while await status(first.json()["id"]) != "completed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    again = await client.post("/api/v1/images", json=order, headers=bearer(creds))
    assert again.status_code == 202, again.text
    listed = (await client.get("/api/v1/images", headers=bearer(creds))).json()
    assert listed["pagination"]["total_items"] == 3


# turns
async def test_a_turn_stops_at_the_generation_time_limit(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm_server: str
) -> None:
    """A model that would stream for 20 s is cut off after PERSONAE_MAX_GENERATION_SECONDS:
    the answer so far is kept and charged like a length stop (`time_limit` in
    `thought_process`), and the engine's stream is closed."""
    await only_llm(app, f"{llm_server}/trickle/v1")
    creds = await make_account()
    character = (await create_character(client, creds)).json()["id"]
    TRICKLE_CLOSED.clear()
    started = time.monotonic()
    reply = await client.post(
        f"/v1/chat/{character}/messages",
        json={"message": "Tell me everything", "verbose": True, "max_tokens": 1000},
        headers=x_api_key(creds),
    )
    took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert GENERATION_SECONDS <= took < GENERATION_SECONDS + 5
    answer = reply.json()
    assert answer["content"].startswith("word word")
    assert answer["thought_process"]["engine"]["finish_reason"] == "time_limit"
    assert 0 < answer["thought_process"]["tokens"]["completion"] < 100
    await wait_for(lambda: bool(TRICKLE_CLOSED), timeout=10)
    assert TRICKLE_CLOSED[0] < 100  # the engine stopped sending long before its 200 words
    stored = (
        await client.get(
            f"/v1/chat/conversations/{answer['conversation_id']}/messages",
            headers=x_api_key(creds),
        )
    ).json()["data"]
    assert stored[0]["content"] == answer["content"]

    # Streamed, the same: deltas, then the final message.
    streamed = await client.post(
        f"/v1/chat/{character}/messages",
        json={"message": "More", "stream": True, "conversation_id": answer["conversation_id"]},
        headers=x_api_key(creds),
    )
    events = [
        (block.split("\n")[0].removeprefix("event: "), block.split("data: ", 1)[1])
        for block in streamed.text.strip().split("\n\n")
    ]
    assert events[-1][0] == "message"
    assert {kind for kind, _ in events[:-1]} == {"delta"}
    assert json.loads(events[-1][1])["content"].startswith("word")


async def test_a_turn_with_nothing_by_the_time_limit_is_504(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm_server: str
) -> None:
    await only_llm(app, f"{llm_server}/slow/v1")
    creds = await make_account()
    character = (await create_character(client, creds)).json()["id"]
    started = time.monotonic()
    error = characters_error(
        await client.post(
            f"/v1/chat/{character}/messages", json={"message": "Hi"}, headers=x_api_key(creds)
        ),
        504,
        "engine_timeout",
    )
    assert time.monotonic() - started < GENERATION_SECONDS + 3
    assert "PERSONAE_MAX_GENERATION_SECONDS" in error["message"]
    assert error["details"] == {"limit": "max_generation_seconds", "max": GENERATION_SECONDS}
    for _ in range(100):  # released: the quota is given back
        me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
        if me["subscription"]["chat_requests"]["used"] == 0:
            break
        await asyncio.sleep(0.05)
    assert me["subscription"]["chat_requests"]["used"] == 0


async def test_max_tokens_is_bounded_by_the_models_context(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, llm_server: str
) -> None:
    llm = await only_llm(app, f"{llm_server}/scripted/v1", context_window=256)
    creds = await make_account()
    character = (await create_character(client, creds)).json()["id"]
    error = characters_error(
        await client.post(
            f"/v1/chat/{character}/messages",
            json={"message": "Hi", "max_tokens": 300},
            headers=x_api_key(creds),
        ),
        400,
        "invalid_request",
    )
    assert error["message"].startswith("max_tokens: 300")
    assert error["details"]["max"] == 255
    response = await client.post(
        "/api/v1/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "llm_id": llm, "max_tokens": 256},
        headers=bearer(creds),
    )
    assert "context of 256" in agents_error(response, 400)
    # Nothing was started or charged.
    assert (await client.get("/v1/chat/conversations", headers=x_api_key(creds))).json()[
        "data"
    ] == []
    me = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert me["subscription"]["chat_requests"]["used"] == 0
