"""The web console over HTTP, as a browser's forms drive it: sign-up, sign-in and the
session, CSRF, API keys and a first call with one, usage, characters and the chat
playground, and that one account never sees or reaches another's objects.

The browser itself (Chromium, through Playwright) is in tests/test_console_browser.py."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from PIL import Image as PILImage

from conftest import make_client
from console_helpers import PASSWORD, create_key, csrf, post, sign_up
from helpers import leave_after_first_chunk, post_scope
from personae.account.service import AccountService
from personae.account.signin import SignIn
from personae.app import create_app
from personae.config import Settings
from personae.state import AppState


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The test client speaks plain HTTP to http://testserver: no Secure cookies, or the
    # client would not send them back.
    return settings.model_copy(update={"console_secure_cookies": "never"})


def png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (48, 48), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


async def as_account(app: FastAPI, username: str, plan: str, balance: str = "0") -> None:
    state: AppState = app.state.personae
    async with state.sessionmaker.begin() as session:
        service = AccountService(session)
        account = await service.get(username)
        await service.set_plan(account, plan)
        if Decimal(balance):
            await service.top_up(account, Decimal(balance))


async def test_sign_up_then_a_key_then_a_first_call(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    page = await client.get("/console/signup")
    assert page.status_code == 200
    assert 'label for="username"' in page.text
    username = await sign_up(client)
    session_cookie = next(c for c in client.cookies.jar if c.name == "personae_session")
    assert session_cookie.path == "/console"
    assert session_cookie.has_nonstandard_attr("HttpOnly")

    keys = await client.get("/console/keys?welcome=1")
    assert f"Welcome, {username}" in keys.text
    key = await create_key(client, "laptop")
    first = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {key}"})
    assert first.status_code == 200
    assert first.json() == []

    listed = await client.get("/console/keys")
    assert key[:12] in listed.text  # the prefix
    assert key not in listed.text  # the secret: shown once only
    key_id = re.search(r"/console/keys/([^/]+)/revoke", listed.text)
    assert key_id is not None
    revoked = await post(client, f"/console/keys/{key_id.group(1)}/revoke")
    assert revoked.status_code == 303
    after = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401


async def test_the_session_cookie_is_secure_except_plain_http_to_loopback(
    app: FastAPI, settings: Settings
) -> None:
    app.state.personae.settings = settings.model_copy(update={"console_secure_cookies": "auto"})
    for base, secure in (("http://127.0.0.1", False), ("http://testserver", True),
                         ("https://console.example", True)):  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as c:
            page = await c.get("/console/signup")
            token = page.cookies["personae_csrf"]
            name = f"u{uuid.uuid4().hex[:10]}"
            answer = await c.post("/console/signup", data={
                "username": name, "email": f"{name}@example.com", "password": PASSWORD,
                "csrf": token,
            }, cookies={"personae_csrf": token})  # fmt: skip
            assert answer.status_code == 303
            header = next(h for h in answer.headers.get_list("set-cookie")
                          if h.startswith("personae_session="))  # fmt: skip
            assert "HttpOnly" in header
            assert "SameSite=lax" in header
            assert ("Secure" in header) is secure, (base, header)


async def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await csrf(client, "/console/signup")
    data = {"username": "nocsrf", "email": "nocsrf@example.com", "password": PASSWORD}
    refused = await client.post("/console/signup", data=data)
    assert refused.status_code == 403
    assert "security token" in refused.text
    wrong = await client.post("/console/signup", data=data | {"csrf": "forged"})
    assert wrong.status_code == 403
    async with app.state.personae.sessionmaker() as session:
        assert not [a for a in await AccountService(session).list() if a.username == "nocsrf"]


async def test_sign_in_sign_out_and_a_wrong_password(client: httpx.AsyncClient) -> None:
    username = await sign_up(client)
    assert (await post(client, "/console/logout")).status_code == 303
    away = await client.get("/console/keys")
    assert away.status_code == 303
    assert away.headers["location"] == "/console/login?next=%2Fconsole%2Fkeys"

    wrong = await post(client, "/console/login", {"login": username, "password": "not it at all"})
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.text
    unknown = await post(client, "/console/login", {"login": "nobody-here", "password": PASSWORD})
    assert unknown.status_code == 401
    assert "Wrong username or password" in unknown.text

    signed = await post(client, "/console/login", {
        "login": f"{username}@example.com", "password": PASSWORD, "next": "/console/keys",
    })  # fmt: skip
    assert signed.status_code == 303
    assert signed.headers["location"] == "/console/keys"
    assert (await client.get("/console/keys")).status_code == 200
    # `next` is only ever a console path: no open redirect.
    elsewhere = await post(client, "/console/login", {
        "login": username, "password": PASSWORD, "next": "//evil.example/",
    })  # fmt: skip
    assert elsewhere.headers["location"] == "/console"


async def test_a_signed_out_cookie_no_longer_signs_in(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    stolen = client.cookies["personae_session"]
    await post(client, "/console/logout")
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as c:
        c.cookies.set("personae_session", stolen, path="/console")
        assert (await c.get("/console")).status_code == 303


async def test_changing_the_password_ends_the_other_sessions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    username = await sign_up(client)
    async with make_client(app) as other:
        await post(other, "/console/login", {"login": username, "password": PASSWORD})
        assert (await other.get("/console")).status_code == 200
        wrong = await post(client, "/console/password",
                           {"current_password": "nope-nope-nope", "new_password": "x" * 12})  # fmt: skip
        assert wrong.status_code == 400
        short = await post(client, "/console/password",
                           {"current_password": PASSWORD, "new_password": "short"})  # fmt: skip
        assert short.status_code == 400
        changed = await post(client, "/console/password",
                             {"current_password": PASSWORD, "new_password": "a new long password"})  # fmt: skip
        assert changed.status_code == 200
        assert (await client.get("/console")).status_code == 200  # this session stays
        assert (await other.get("/console")).status_code == 303  # the other one ended
        old = await post(other, "/console/login", {"login": username, "password": PASSWORD})
        assert old.status_code == 401


async def test_sign_in_attempts_are_rate_limited(app: FastAPI, client: httpx.AsyncClient) -> None:
    limit = app.state.personae.settings.console_logins_per_minute
    token = await csrf(client)
    statuses = [
        (
            await post(
                client, "/console/login", {"login": "victim", "password": f"guess{i}"}, token=token
            )
        ).status_code
        for i in range(limit + 1)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit] == 429


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sign_up_modes(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> None:
    state: AppState = app.state.personae
    state.settings = settings.model_copy(update={"signup": "closed"})
    closed = await post(client, "/console/signup",
                        {"username": "closedone", "email": "c@example.com", "password": PASSWORD})  # fmt: skip
    assert closed.status_code == 403
    assert "closed" in (await client.get("/console/signup")).text

    state.settings = settings.model_copy(update={"signup": "invite"})
    data = {"username": "invited", "email": "i@example.com", "password": PASSWORD}
    assert (await post(client, "/console/signup", data | {"invite": "made-up"})).status_code == 403
    async with state.sessionmaker.begin() as session:
        code = (await SignIn(session, timedelta(hours=1)).create_invite()).code
    assert (await post(client, "/console/signup", data | {"invite": code})).status_code == 303
    async with make_client(app) as again:
        reused = await post(again, "/console/signup",
                            {"username": "second", "email": "s@example.com", "password": PASSWORD,
                             "invite": code})  # fmt: skip
        assert reused.status_code == 403


async def test_concurrent_sign_ups_with_one_name_make_one_account(app: FastAPI) -> None:
    async def attempt(i: int) -> int:
        async with make_client(app) as c:
            response = await post(c, "/console/signup", {
                "username": "samename", "email": f"same{i}@example.com", "password": PASSWORD,
            })  # fmt: skip
            return response.status_code

    statuses = await asyncio.gather(*(attempt(i) for i in range(6)))
    assert sorted(statuses).count(303) == 1, statuses
    assert set(statuses) <= {303, 409}, statuses


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_characters_and_the_playground(app: FastAPI, client: httpx.AsyncClient) -> None:
    owner = await sign_up(client)
    await as_account(app, owner, "standard")
    created = await post(client, "/console/characters", {
        "name": "Aria", "description": "A travelling bard", "personality": "cheerful",
        "background": "raised in a tavern", "greeting": "Well met, traveller!",
        "tags": "Music, fantasy",
    }, files={"image": ("aria.png", png(), "image/png")})  # fmt: skip
    assert created.status_code == 303, created.text[:500]
    page_url = created.headers["location"]
    character_id = page_url.rsplit("/", 1)[1]
    page = await client.get(page_url)
    assert "<h1>Aria</h1>" in page.text
    avatar = re.search(r'<img class="avatar" src="([^"]+)"', page.text)
    assert avatar is not None
    image = await client.get(avatar.group(1).replace("&amp;", "&"))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"

    found = await client.get("/console/characters?q=BARD&tags=music")
    assert f"/console/characters/{character_id}" in found.text
    missing = await client.get("/console/characters?q=bard&tags=horror")
    assert f"/console/characters/{character_id}" not in missing.text

    assert (await post(client, f"{page_url}/like")).status_code == 303
    assert (await post(client, f"{page_url}/favorite")).status_code == 303
    liked = await client.get(page_url)
    assert "Liked" in liked.text
    assert "In favorites" in liked.text
    favorites = await client.get("/console/characters?view=favorites")
    assert f"/console/characters/{character_id}" in favorites.text

    book = {"entries": [{"keys": ["lute"], "content": "Aria's lute is named Nightingale.",
                         "enabled": True, "insertion_order": 0}]}  # fmt: skip
    saved = await post(client, f"{page_url}/lorebook", {"book": json.dumps(book)})
    assert saved.status_code == 303
    assert "Nightingale" in (await client.get(page_url)).text
    bad = await post(client, f"{page_url}/lorebook", {"book": "{not json"})
    assert bad.status_code == 400

    edited = await post(client, page_url, {
        "name": "Aria the Bard", "description": "A travelling bard", "personality": "cheerful",
        "background": "raised in a tavern", "greeting": "Well met!", "tags": "music",
    })  # fmt: skip
    assert edited.status_code == 303
    assert "<h1>Aria the Bard</h1>" in (await client.get(page_url)).text

    # The playground, streamed: deltas, then the stored message.
    chat = await client.get(f"/console/chat/{character_id}")
    assert "Well met!" in chat.text
    token = await csrf(client)
    streamed = await client.post(
        f"/console/chat/{character_id}/stream",
        json={"message": "Hello! What is your name?", "verbose": True},
        headers={"X-CSRF-Token": token, "Accept": "text/event-stream"},
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [block for block in streamed.text.split("\n\n") if block.strip()]
    deltas = [json.loads(e.split("data: ", 1)[1])["content"] for e in events
              if e.startswith("event: delta")]  # fmt: skip
    message = json.loads(events[-1].split("data: ", 1)[1])
    assert events[-1].startswith("event: message")
    assert "".join(deltas) == message["content"]
    assert message["thought_process"]["tokens"]["completion"] > 0
    conversation_id = message["conversation_id"]

    # Without the script: a form post, then the conversation with both turns.
    sent = await post(client, f"/console/chat/{character_id}/messages", {
        "message": "Tell me about your lute.", "conversation_id": conversation_id,
    })  # fmt: skip
    assert sent.status_code == 303
    assert (
        sent.headers["location"] == f"/console/chat/{character_id}?conversation={conversation_id}"
    )
    shown = await client.get(sent.headers["location"])
    assert message["content"] in shown.text.replace("&#39;", "'").replace("&#34;", '"')
    assert "Tell me about your lute." in shown.text
    regenerate = re.search(r'action="([^"]+/regenerate/[^"]+)"', shown.text)
    assert regenerate is not None
    assert (await post(client, regenerate.group(1))).status_code == 303

    usage = await client.get("/console")
    assert 'id="chat-requests">3 of' in usage.text
    assert 'id="by-model"' in usage.text

    # Another account: sees the public character, cannot change it, never sees the chat.
    async with make_client(app) as other:
        await as_account(app, await sign_up(other), "standard")  # a plan with the catalogue
        assert (await other.get(page_url)).status_code == 200
        assert "Lorebook" not in (await other.get(page_url)).text
        assert (await post(other, page_url, {"name": "Mine now"})).status_code == 403
        assert (await post(other, f"{page_url}/delete")).status_code == 403
        assert (await post(other, f"{page_url}/lorebook", {"book": "{}"})).status_code == 403
        theirs = f"/console/chat/{character_id}?conversation={conversation_id}"
        assert (await other.get(theirs)).status_code == 404
        assert conversation_id not in (await other.get("/console/chat")).text
        foreign = await post(other, f"/console/chat/{character_id}/messages", {
            "message": "hi", "conversation_id": conversation_id,
        })  # fmt: skip
        assert foreign.status_code == 404
        regen = await post(other, regenerate.group(1))
        assert regen.status_code == 404
        keys = await client.get("/console/keys")
        their_keys = await other.get("/console/keys")
        assert keys.status_code == their_keys.status_code == 200

    # Private: 404 for everyone else, by URL and in lists.
    await post(client, page_url, {"name": "Aria the Bard", "visibility": "private"})
    async with make_client(app) as other:
        await as_account(app, await sign_up(other), "standard")
        assert (await other.get(page_url)).status_code == 404
        assert (await other.get(f"/console/chat/{character_id}")).status_code == 404
        assert character_id not in (await other.get("/console/characters?q=bard")).text

    assert (await post(client, f"{page_url}/delete")).status_code == 303
    assert (await client.get(page_url)).status_code == 404


async def test_keys_of_another_account_cannot_be_revoked(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await sign_up(client)
    key = await create_key(client)
    listed = await client.get("/console/keys")
    key_id = re.search(r"/console/keys/([^/]+)/revoke", listed.text)
    assert key_id is not None
    async with make_client(app) as other:
        await sign_up(other)
        assert key[:12] not in (await other.get("/console/keys")).text
        refused = await post(other, f"/console/keys/{key_id.group(1)}/revoke")
        assert refused.status_code == 404
    still = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {key}"})
    assert still.status_code == 200


async def test_the_stream_needs_the_csrf_header_and_a_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await sign_up(client)
    refused = await client.post("/console/chat/char_x/stream", json={"message": "hi"})
    assert refused.status_code == 403
    async with make_client(app) as anonymous:
        token = await csrf(anonymous)
        answer = await anonymous.post("/console/chat/char_x/stream", json={"message": "hi"},
                                      headers={"X-CSRF-Token": token})  # fmt: skip
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"


async def test_pages_are_accessible_html_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    for path in ("/console", "/console/keys", "/console/characters", "/console/characters/new",
                 "/console/chat", "/console/password"):  # fmt: skip
        page = await client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert '<meta name="viewport"' in page.text
        assert "<script>" not in page.text  # nothing inline
        assert " style=" not in page.text
        # Every field has its label.
        for field in re.findall(r'<(?:input|textarea|select)[^>]*\bid="([^"]+)"', page.text):
            assert f'for="{field}"' in page.text, (path, field)
    slash = await client.get("/console/")
    assert slash.status_code == 303
    assert slash.headers["location"] == "/console"
    missing = await client.get("/console/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_playground_reader_that_goes_away_is_not_charged(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The browser tab is closed mid-answer: the turn stops, nothing is stored or counted."""
    owner = await sign_up(client)
    await as_account(app, owner, "standard")
    created = await post(client, "/console/characters", {"name": "Teller", "description": "d"})
    character_id = created.headers["location"].rsplit("/", 1)[1]
    token = await csrf(client)
    cookies = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
    body = json.dumps({"message": "Tell me a very long story"}).encode()
    headers = [(b"content-type", b"application/json"), (b"cookie", cookies.encode()),
               (b"x-csrf-token", token.encode()), (b"accept", b"text/event-stream")]  # fmt: skip
    scope = post_scope(f"/console/chat/{character_id}/stream", headers, "2.0")
    assert await leave_after_first_chunk(app, scope, body)
    for _ in range(100):
        usage = await client.get("/console")
        if 'id="chat-requests">0 of' in usage.text:
            break
        await asyncio.sleep(0.05)
    assert 'id="chat-requests">0 of' in usage.text
    assert 'id="by-model"' not in usage.text  # nothing settled, nothing in the ledger


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_session_outlives_the_process_that_made_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Sessions are rows: another process (a restart, a second worker) knows the cookie."""
    username = await sign_up(client)
    other = create_app(settings)
    async with LifespanManager(other, shutdown_timeout=60), make_client(other) as c:
        c.cookies.set("personae_session", client.cookies["personae_session"], path="/console")
        page = await c.get("/console/keys")
        assert page.status_code == 200
        assert username in page.text
