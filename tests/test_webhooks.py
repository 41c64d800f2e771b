"""Webhooks through the characters API, delivered to a real HTTP receiver on loopback:
plans, management, every event signed per Standard Webhooks, retries, the outbox across a
crash and a rollback, the SSRF guard, isolation of a slow endpoint, automatic disabling."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook as Verifier

from conftest import MakeAccount, create_account
from helpers import agents_error, bearer, characters_error, x_api_key
from llm_servers import free_port
from personae.account.service import Credentials
from personae.config import Settings
from personae.models import Image
from personae.webhook.events import EVENT_TYPES
from personae.webhook.ssrf import is_public
from test_images import add_sd_model
from webhook_receiver import Receiver, receiver

CHAR = {"description": "A courier", "personality": "Calm", "background": "The docks"}
FAST = {
    "webhook_allow_private": True,
    "webhook_retry_schedule": "0.2,0.2,0.2",
    "webhook_relay_seconds": 0.05,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


async def register(
    client: httpx.AsyncClient, creds: Credentials, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    body = {"url": url, "events": events or list(EVENT_TYPES), "description": "test"}
    response = await client.post("/v1/webhooks", json=body, headers=x_api_key(creds))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(
    client: httpx.AsyncClient, creds: Credentials, webhook_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/webhooks/{webhook_id}/deliveries?limit=100", headers=x_api_key(creds)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def verify(secret: str, received: Any) -> dict[str, Any]:
    """What a receiver does with the Standard Webhooks library: raises if the signature,
    id or timestamp is wrong."""
    payload: dict[str, Any] = Verifier(secret).verify(received.body, received.headers)
    return payload


async def test_only_premium_and_enterprise_plans(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["character.created"]}
    for plan, code in [("free", "subscription_required"), ("pro", "premium_required"),
                       ("standard", "premium_required")]:  # fmt: skip
        creds = await make_account(plan)
        response = await client.post("/v1/webhooks", json=body, headers=x_api_key(creds))
        characters_error(response, 403, code)
        characters_error(await client.get("/v1/webhooks", headers=x_api_key(creds)), 403, code)
    for plan in ("premium", "enterprise"):
        creds = await make_account(plan)
        assert (
            await client.post("/v1/webhooks", json=body, headers=x_api_key(creds))
        ).status_code == 201


async def test_manage_webhooks(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds, other = await make_account("premium"), await make_account("premium")
    h = x_api_key(creds)
    created = await register(client, creds, "http://127.0.0.1:9/hook", ["character.created"] * 2)
    assert created["events"] == ["character.created"]  # duplicates dropped
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["status"] == "active"
    wid = created["id"]
    got = (await client.get(f"/v1/webhooks/{wid}", headers=h)).json()
    assert "secret" not in got
    assert got["url"] == "http://127.0.0.1:9/hook"
    patched = await client.patch(
        f"/v1/webhooks/{wid}",
        json={"events": ["image.created", "message.created"], "description": "two",
              "status": "disabled"},
        headers=h,
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert (patched.json()["events"], patched.json()["status"]) == (
        ["image.created", "message.created"], "disabled",
    )  # fmt: skip
    assert patched.json()["disabled_reason"] == "Disabled by its owner"
    enabled = (
        await client.patch(f"/v1/webhooks/{wid}", json={"status": "active"}, headers=h)
    ).json()
    assert (enabled["status"], enabled["disabled_reason"]) == ("active", None)
    rotated = (await client.post(f"/v1/webhooks/{wid}/rotate-secret", headers=h)).json()
    assert rotated["secret"] != created["secret"]
    listed = (await client.get("/v1/webhooks?limit=1", headers=h)).json()
    assert listed["pagination"] == {"total": 1, "page": 1, "limit": 1, "pages": 1}

    bad: list[tuple[dict[str, Any], str]] = [
        ({"url": "http://127.0.0.1:9/x", "events": ["character.deleted"]}, "unknown event"),
        ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
        ({"url": "ftp://example.com/x", "events": ["image.created"]}, "http"),
        ({"url": "http:///nohost", "events": ["image.created"]}, "host"),
        ({"url": "http://u:p@127.0.0.1/x", "events": ["image.created"]}, "credentials"),
        ({"url": "http://no-such-host.invalid/x", "events": ["image.created"]}, "resolve"),
        ({"events": ["image.created"]}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": ["image.created"], "secret": "x"}, "secret"),
    ]
    for body, word in bad:
        error = characters_error(
            await client.post("/v1/webhooks", json=body, headers=h), 400, "invalid_request"
        )
        assert word in error["message"], (body, error)
    characters_error(
        await client.patch(f"/v1/webhooks/{wid}", json={"status": "paused"}, headers=h),
        400, "invalid_request",
    )  # fmt: skip
    characters_error(
        await client.patch(f"/v1/webhooks/{wid}", json={"events": None}, headers=h),
        400, "invalid_request",
    )  # fmt: skip
    for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test"),
                         ("POST", "/rotate-secret"), ("GET", "/deliveries")]:  # fmt: skip
        response = await client.request(
            method, f"/v1/webhooks/{wid}{path}", json={} if method == "PATCH" else None,
            headers=x_api_key(other),
        )  # fmt: skip
        characters_error(response, 404, "not_found")
    deleted = await client.delete(f"/v1/webhooks/{wid}", headers=h)
    assert deleted.json() == {"success": True, "message": "Webhook deleted", "webhook_id": wid}
    characters_error(await client.get(f"/v1/webhooks/{wid}", headers=h), 404, "not_found")


async def test_every_event_is_delivered_signed(
    client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    creds = await make_account("premium")
    hook = await register(client, creds, hooks.base + "/hook")
    h = x_api_key(creds)
    character = (
        await client.post("/v1/characters", json={"name": "Nell", **CHAR}, headers=h)
    ).json()
    await client.patch(f"/v1/characters/{character['id']}", json={"description": "Bold"}, headers=h)
    reply = await client.post(
        f"/v1/chat/{character['id']}/messages",
        json={"message": "Hello", "max_tokens": 4, "temperature": 0},
        headers=h,
    )
    assert reply.status_code == 200, reply.text
    conversation_id = reply.json()["conversation_id"]
    image = await client.post(
        "/api/v1/images", json={"prompt": "Nell's map", "conversation_id": conversation_id,
                                "width": 64, "height": 64}, headers=bearer(creds),
    )  # fmt: skip
    assert image.status_code == 201, image.text
    # character.created, character.updated, conversation.created, message.created (user),
    # message.created (reply), conversation.updated, then for the image: message.created,
    # conversation.updated, image.created.
    await hooks.wait_for(9)
    # The steering events (edits, deletions) have theirs in test_conversation_steering.py.
    steering = {"message.updated", "message.deleted", "conversation.deleted"}
    assert set(hooks.types()) == set(EVENT_TYPES) - steering
    by_type: dict[str, list[dict[str, Any]]] = {}
    for received in hooks.on("/hook"):
        payload = verify(hook["secret"], received)
        assert set(payload) == {"id", "type", "created_at", "data"}
        assert received.headers["webhook-id"] == payload["id"]
        by_type.setdefault(payload["type"], []).append(payload["data"])
    assert by_type["character.created"][0]["name"] == "Nell"
    assert by_type["character.updated"][0]["description"] == "Bold"
    assert by_type["conversation.created"][0]["id"] == conversation_id
    # Up to four deliveries to one webhook run at once: arrival order is not send order.
    messages = by_type["message.created"]
    assert len(messages) == 3
    assert [m["content"] for m in messages if not m["is_character"]] == ["Hello"]
    [posted] = [m for m in messages if m["image_url"] is not None]
    assert (posted["is_character"], posted["content"]) == (True, "")
    assert posted["image_url"] == image.json()["url"]
    assert max(c["message_count"] for c in by_type["conversation.updated"]) == 3
    assert by_type["image.created"][0]["url"] == image.json()["url"]
    async with asyncio.timeout(10):  # the receiver answered; the log follows
        while True:
            log = await deliveries(client, creds, hook["id"])
            if {d["status"] for d in log} == {"succeeded"}:
                break
            await asyncio.sleep(0.05)
    assert len(log) == 9
    assert {d["last_response_code"] for d in log} == {200}


async def test_the_request_id_travels_with_the_event_and_the_image_job(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    creds = await make_account("premium")
    await register(client, creds, hooks.base + "/hook", ["character.created"])
    created = await client.post(
        "/v1/characters",
        json={"name": "Nell", **CHAR},
        headers=x_api_key(creds) | {"X-Request-Id": "trace-42"},
    )
    assert created.headers["X-Request-Id"] == "trace-42"
    untraced = await client.post("/v1/characters", json={"name": "Ada", **CHAR},
                                 headers=x_api_key(creds))  # fmt: skip
    await hooks.wait_for(2)
    ids = {r.json["data"]["name"]: r.headers.get("x-request-id") for r in hooks.on("/hook")}
    assert ids == {"Nell": "trace-42", "Ada": untraced.headers["X-Request-Id"]}
    image = await client.post(
        "/api/v1/images",
        json={"prompt": "a map", "width": 64, "height": 64},
        headers=bearer(creds) | {"X-Request-Id": "trace-43"},
    )
    assert image.status_code == 201, image.text
    async with app.state.personae.sessionmaker() as session:
        row = await session.get_one(Image, image.json()["id"])
    assert row.request_id == "trace-43"


async def test_a_failing_receiver_gets_the_event_on_the_third_attempt(
    client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    hooks.fail_first = 2
    creds = await make_account("premium")
    hook = await register(client, creds, hooks.base + "/hook", ["character.created"])
    await client.post("/v1/characters", json={"name": "Odo", **CHAR}, headers=x_api_key(creds))
    await hooks.wait_for(3)
    ids = {r.headers["webhook-id"] for r in hooks.received}
    assert len(ids) == 1  # the same event, retried
    for received in hooks.received:
        verify(hook["secret"], received)
    async with asyncio.timeout(10):
        while (log := await deliveries(client, creds, hook["id"]))[0]["status"] != "succeeded":
            await asyncio.sleep(0.05)
    [delivery] = log
    assert (delivery["attempts"], delivery["last_response_code"], delivery["last_error"]) == (
        3,
        200,
        None,
    )
    assert delivery["event"] == "character.created"
    assert delivery["delivered_at"] is not None


async def test_a_rolled_back_change_sends_nothing(
    app: FastAPI, client: httpx.AsyncClient, hooks: Receiver
) -> None:
    creds = await create_account(app, "premium", balance="0")
    hook = await register(client, creds, hooks.base + "/hook")
    paid = await add_sd_model(app, "placeholder", {}, cost="1")
    # The agent is created, then its avatar cannot be paid for: 402, and the request's
    # transaction, with its character.created event, rolls back.
    body = {"name": "Ghost", "sd_model_id": paid}
    agents_error(await client.post("/api/v1/agents", json=body, headers=bearer(creds)), 402)
    await client.post("/v1/characters", json={"name": "Real", **CHAR}, headers=x_api_key(creds))
    await hooks.wait_for(1)
    await asyncio.sleep(0.5)  # many relay rounds
    assert [r.json["data"]["name"] for r in hooks.received] == ["Real"]
    assert len(await deliveries(client, creds, hook["id"])) == 1


async def test_ping_and_rotation_overlap(
    client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    creds = await make_account("premium")
    hook = await register(client, creds, hooks.base + "/hook", ["image.created"])
    h = x_api_key(creds)
    rotated = (await client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=h)).json()
    accepted = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=h)
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["event"], accepted.json()["status"]) == ("ping", "pending")
    await hooks.wait_for(1)
    [ping] = hooks.received
    assert ping.json["type"] == "ping"
    assert ping.json["data"]["webhook_id"] == hook["id"]
    # Both secrets sign during the overlap: a receiver on either verifies.
    assert len(ping.headers["webhook-signature"].split(" ")) == 2
    verify(hook["secret"], ping)
    verify(rotated["secret"], ping)


async def test_slow_endpoint_does_not_delay_another_account(
    client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    hooks.delay = 3
    slow, quick = await make_account("premium"), await make_account("premium")
    await register(client, slow, hooks.base + "/slow", ["character.created"])
    await register(client, quick, hooks.base + "/hook", ["character.created"])
    for n in range(12):
        await client.post("/v1/characters", json={"name": f"S{n}", **CHAR}, headers=x_api_key(slow))
    await hooks.wait_for(4, "/slow", timeout=5)  # the slow endpoint is busy
    started = asyncio.get_running_loop().time()
    await client.post("/v1/characters", json={"name": "Q", **CHAR}, headers=x_api_key(quick))
    await hooks.wait_for(1, "/hook", timeout=2)
    assert asyncio.get_running_loop().time() - started < 2
    assert len(hooks.on("/slow")) <= 8  # the slow one holds at most its own slots


async def test_a_webhook_failing_for_long_is_disabled_with_the_reason(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    app.state.personae.webhook_deliveries.settings.webhook_disable_after_seconds = 0.3
    creds = await make_account("premium")
    hook = await register(client, creds, hooks.base + "/broken", ["character.created"])
    await client.post("/v1/characters", json={"name": "Doomed", **CHAR}, headers=x_api_key(creds))
    async with asyncio.timeout(10):
        while (
            got := (await client.get(f"/v1/webhooks/{hook['id']}", headers=x_api_key(creds))).json()
        )["status"] != "disabled":
            await asyncio.sleep(0.05)
    assert "HTTP 500" in got["disabled_reason"]
    assert got["failing_since"] is not None
    [delivery] = await deliveries(client, creds, hook["id"])
    assert delivery["last_response_code"] == 500
    # Nothing more is sent to a disabled webhook; re-enabling starts afresh.
    sent = len(hooks.received)
    await client.post("/v1/characters", json={"name": "Later", **CHAR}, headers=x_api_key(creds))
    await asyncio.sleep(0.4)
    assert len(hooks.received) == sent


async def test_redirects_are_not_followed(
    client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    creds = await make_account("premium")
    hook = await register(client, creds, hooks.base + "/redirect", ["character.created"])
    await client.post("/v1/characters", json={"name": "R", **CHAR}, headers=x_api_key(creds))
    async with asyncio.timeout(10):
        while (log := await deliveries(client, creds, hook["id"]))[0]["status"] != "failed":
            await asyncio.sleep(0.05)
    assert log[0]["last_response_code"] == 307
    assert "redirect" in log[0]["last_error"]
    assert hooks.on("/hook") == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True), ("2606:4700::1111", True),
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
        ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
        ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fd00::1", False),
        ("::ffff:127.0.0.1", False), ("224.0.0.1", False),
    ],
)  # fmt: skip
def test_address_ranges(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_private_addresses_are_refused_without_the_operators_flag(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, hooks: Receiver
) -> None:
    creds = await make_account("premium")
    hook = await register(client, creds, hooks.base + "/hook", ["character.created"])
    state = app.state.personae
    state.settings.webhook_allow_private = False
    for url in (hooks.base + "/hook", "http://localhost/x", "http://169.254.169.254/latest",
                "http://[::1]:8080/x", "http://10.0.0.8/x"):  # fmt: skip
        body = {"url": url, "events": ["image.created"]}
        error = characters_error(
            await client.post("/v1/webhooks", json=body, headers=x_api_key(creds)),
            400, "invalid_request",
        )  # fmt: skip
        assert "private or reserved address" in error["message"], url
    # At delivery time too, for a webhook registered while it was allowed: the connection
    # is checked when it is made.
    await state.webhook_deliveries.close()
    state.webhook_deliveries._client = None
    await client.post("/v1/characters", json={"name": "P", **CHAR}, headers=x_api_key(creds))
    async with asyncio.timeout(10):
        while (
            not (log := await deliveries(client, creds, hook["id"]))
            or log[0]["attempts"] < 1
            or log[0]["status"] == "delivering"
        ):
            await asyncio.sleep(0.05)
    assert "refused" in log[0]["last_error"]
    assert hooks.received == []


# the outbox across a crash


def server_env(data_dir: Path, port: int, relay_seconds: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_DATA_DIR=str(data_dir),
        PERSONAE_PORT=str(port),
        PERSONAE_WEBHOOK_ALLOW_PRIVATE="1",
        PERSONAE_WEBHOOK_RELAY_SECONDS=str(relay_seconds),
        PERSONAE_EMBEDDED_LLM="false",
    )
    return env


async def serve(data_dir: Path, relay_seconds: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "personae", "serve"],
        env=server_env(data_dir, port, relay_seconds),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    async with asyncio.timeout(60), httpx.AsyncClient() as c:
        while True:
            try:
                if (await c.get(base + "/health")).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def test_a_server_killed_before_delivery_delivers_after_restart(
    tmp_path: Path, hooks: Receiver
) -> None:
    data_dir = tmp_path / "server"
    # The first server's relay would first run an hour after it started: it dies before.
    first, base = await serve(data_dir, relay_seconds=3600)
    try:
        from personae.account.service import AccountService
        from personae.app import prepare_database
        from personae.state import AppState

        state = AppState.build(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
        await prepare_database(state)
        async with state.sessionmaker.begin() as session:
            creds = await AccountService(session).create_account("crash", None, "premium", 0)  # type: ignore[arg-type]
        await state.close()
        async with httpx.AsyncClient(base_url=base, headers=x_api_key(creds)) as c:
            hook = (await c.post("/v1/webhooks", json={"url": hooks.base + "/hook",
                                                       "events": ["character.created"]})).json()  # fmt: skip
            created = await c.post("/v1/characters", json={"name": "Survivor", **CHAR})
            assert created.status_code == 201  # committed, with its event in the outbox
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
        await asyncio.sleep(0.3)
        assert hooks.received == []
    finally:
        if first.poll() is None:
            first.kill()
    second, base = await serve(data_dir, relay_seconds=0.05)
    try:
        await hooks.wait_for(1)
        payload = verify(hook["secret"], hooks.received[0])
        assert (payload["type"], payload["data"]["name"]) == ("character.created", "Survivor")
    finally:
        second.terminate()
        second.wait(timeout=20)
