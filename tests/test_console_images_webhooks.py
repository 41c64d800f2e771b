"""The console's images and webhooks pages over HTTP, as a browser uses them: accounts made
by signing up, forms posted with the CSRF token, images drawn by the placeholder engine on
the in-process queue, and test deliveries to a real receiver on loopback. Each section is
also checked for isolation (another account's ids answer 404 and are never listed) and for
CSRF (a form without the token is refused, and writes nothing)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from conftest import make_client
from personae.account.service import AccountService
from personae.config import Settings
from personae.models import Image, Webhook, WebhookDelivery
from personae.state import AppState
from test_images import add_sd_model
from test_webhooks import verify
from webhook_receiver import Receiver, receiver

CSRF_COOKIE = "personae_csrf"
FAST_WEBHOOKS = {
    "webhook_allow_private": True,  # the receiver listens on loopback
    "webhook_retry_schedule": "0.2,0.2,0.2",
    "webhook_relay_seconds": 0.05,
}


@pytest.fixture
def backend() -> str:
    """SQLite only: the pages add no SQL of their own (the services are tested on both)."""
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The test client's http://testserver is not loopback: cookies without `Secure`.
    return settings.model_copy(update={"console_secure_cookies": "never", **FAST_WEBHOOKS})


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


class Browser:
    """One signed-in person: a client with their cookies, and the form's CSRF value."""

    def __init__(self, client: httpx.AsyncClient, username: str) -> None:
        self.client = client
        self.username = username

    @property
    def csrf(self) -> str:
        return str(self.client.cookies.get(CSRF_COOKIE, path="/console"))

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(
        self, path: str, data: Mapping[str, str | list[str]] | None = None, *, token: bool = True
    ) -> httpx.Response:
        form: dict[str, str | list[str]] = dict(data or {})
        if token:
            form["csrf"] = self.csrf
        return await self.client.post(path, data=form)


@pytest.fixture
async def browsers(app: FastAPI) -> AsyncIterator[tuple[Browser, Browser]]:
    """Two people who signed up through the console."""
    async with make_client(app) as one, make_client(app) as two:
        yield await sign_up(one), await sign_up(two)


async def sign_up(client: httpx.AsyncClient) -> Browser:
    assert (await client.get("/console/signup")).status_code == 200
    username = f"u{uuid.uuid4().hex[:10]}"
    browser = Browser(client, username)
    form = {"username": username, "email": f"{username}@example.com",
            "password": "correct horse battery"}  # fmt: skip
    response = await browser.post("/console/signup", form)
    assert response.status_code == 303, response.text
    assert "personae_session" in client.cookies
    return browser


async def set_plan(app: FastAPI, browser: Browser, plan: str) -> None:
    state: AppState = app.state.personae
    async with state.sessionmaker.begin() as session:
        service = AccountService(session)
        await service.set_plan(await service.get(browser.username), plan)


async def count(app: FastAPI, model: type[Image] | type[Webhook] | type[WebhookDelivery]) -> int:
    state: AppState = app.state.personae
    async with state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def stored_webhook(app: FastAPI, webhook_id: str) -> Webhook | None:
    state: AppState = app.state.personae
    async with state.sessionmaker() as session:
        return await session.get(Webhook, webhook_id)


async def page_until(browser: Browser, path: str, pattern: str, timeout: float = 30) -> str:
    """Reload the page (as its meta refresh does) until `pattern` appears in it."""
    deadline = time.monotonic() + timeout
    while True:
        response = await browser.get(path)
        assert response.status_code == 200, response.text
        if re.search(pattern, response.text):
            return response.text
        assert time.monotonic() < deadline, f"{pattern!r} never appeared on {path}"
        await asyncio.sleep(0.1)


def secret_on(page: str) -> str:
    match = re.search(r'<code id="new-secret">(whsec_[A-Za-z0-9+/=]+)</code>', page)
    assert match is not None, page
    return match.group(1)


async def test_images_generate_list_and_isolation(
    app: FastAPI, browsers: tuple[Browser, Browser]
) -> None:
    ann, bob = browsers
    page = await ann.get("/console/images")
    assert page.status_code == 200
    assert "No images yet." in page.text
    assert 'http-equiv="refresh"' not in page.text
    model_id = re.search(r'<option value="(model_[^"]+)"', page.text)
    assert model_id is not None, page.text
    assert "Placeholder" in page.text

    # The form's values go through the API's schema: an empty prompt is refused on the page.
    refused = await ann.post("/console/images", {"prompt": "   ", "sd_model_id": model_id[1]})
    assert refused.status_code == 400
    assert "prompt" in refused.text
    assert await count(app, Image) == 0

    ordered = await ann.post(
        "/console/images",
        {"prompt": "a lighthouse at dusk", "negative_prompt": "fog",
         "sd_model_id": model_id[1]},
    )  # fmt: skip
    assert ordered.status_code == 303
    assert ordered.headers["location"] == "/console/images"
    listed = await page_until(ann, "/console/images", r'data-status="completed"')
    [image_id] = re.findall(r'<li id="(img_[^"]+)"', listed)
    assert "a lighthouse at dusk" in listed
    assert 'http-equiv="refresh"' not in listed  # nothing left to wait for
    src = re.search(r'<img src="http://testserver(/files/[^"]+)"', listed)
    assert src is not None, listed
    png = await ann.get(src[1].replace("&amp;", "&"))
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"

    one = await ann.get(f"/console/images/{image_id}")
    assert one.status_code == 200
    assert '<dd id="image-status">completed</dd>' in one.text
    assert "fog" in one.text

    # An image the balance cannot pay for: 402 on the form, nothing written or charged.
    costly = await add_sd_model(app, "placeholder", {}, cost="1")
    poor = await ann.post("/console/images", {"prompt": "gold", "sd_model_id": costly})
    assert poor.status_code == 402
    assert "Insufficient account balance" in poor.text
    assert 'value="gold"' not in poor.text  # a textarea keeps the prompt as its content
    assert ">gold</textarea>" in poor.text
    assert await count(app, Image) == 1

    # Bob never sees Ann's image, by list or by id.
    assert image_id not in (await bob.get("/console/images")).text
    assert (await bob.get(f"/console/images/{image_id}")).status_code == 404
    assert (await ann.get("/console/images/img_nosuchimage")).status_code == 404

    # CSRF: a form without the token (or with another's) is refused before it orders.
    forged = await ann.post("/console/images", {"prompt": "forged"}, token=False)
    assert forged.status_code == 403
    stale = await ann.client.post("/console/images", data={"prompt": "x", "csrf": bob.csrf})
    assert stale.status_code == 403
    assert await count(app, Image) == 1


async def test_webhooks_need_a_plan_with_them(
    app: FastAPI, browsers: tuple[Browser, Browser]
) -> None:
    ann, _ = browsers  # signed up: the free plan
    page = await ann.get("/console/webhooks")
    assert page.status_code == 403
    assert "not included" in page.text
    assert 'action="/console/webhooks"' not in page.text
    posted = await ann.post(
        "/console/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["image.created"]}
    )
    assert posted.status_code == 403
    assert await count(app, Webhook) == 0


async def test_webhooks_lifecycle_isolation_and_csrf(
    app: FastAPI, browsers: tuple[Browser, Browser], hooks: Receiver
) -> None:
    ann, bob = browsers
    for browser in browsers:
        await set_plan(app, browser, "premium")
    page = await ann.get("/console/webhooks")
    assert page.status_code == 200
    assert "No webhooks yet." in page.text
    for event in ("message.created", "character.created", "image.created"):
        assert f'value="{event}"' in page.text

    # The API's rules, on the form: an unknown event, no event at all, a bad URL.
    url = f"{hooks.base}/hook"
    refusals: list[tuple[dict[str, str | list[str]], str]] = [
        ({"url": url, "events": ["character.deleted"]}, "unknown event"),
        ({"url": url}, "events"),
        ({"url": "ftp://example.com/x", "events": ["image.created"]}, "http"),
    ]
    for form, word in refusals:
        bad = await ann.post("/console/webhooks", form)
        assert bad.status_code == 400, bad.text
        assert word in bad.text
    assert await count(app, Webhook) == 0

    created = await ann.post(
        "/console/webhooks",
        {"url": url, "events": ["character.created", "image.created"], "description": "mine"},
    )
    assert created.status_code == 201, created.text
    secret = secret_on(created.text)
    [webhook_id] = re.findall(r'<tr id="(wh_[^"]+)"', created.text)
    listed = await ann.get("/console/webhooks")
    assert url in listed.text
    assert "character.created" in listed.text
    assert secret not in listed.text  # shown once
    detail = f"/console/webhooks/{webhook_id}"
    page = await ann.get(detail)
    assert page.status_code == 200
    assert secret not in page.text
    assert '<dd id="webhook-status">active</dd>' in page.text

    # A test delivery reaches the receiver, signed with the secret, and shows in the log.
    sent = await ann.post(f"{detail}/test")
    assert sent.status_code == 303
    assert sent.headers["location"] == detail
    await hooks.wait_for(1)
    assert verify(secret, hooks.on("/hook")[0])["type"] == "ping"
    log = await page_until(ann, detail, r'data-event="ping" data-status="succeeded"')
    assert '<table id="deliveries">' in log
    assert "HTTP 200" in log

    # Rotating shows the new secret once; the next delivery is signed with it.
    rotated = await ann.post(f"{detail}/rotate")
    assert rotated.status_code == 200
    new_secret = secret_on(rotated.text)
    assert new_secret != secret
    assert 'http-equiv="refresh"' not in rotated.text
    assert new_secret not in (await ann.get(detail)).text
    await ann.post(f"{detail}/test")
    await hooks.wait_for(2)
    assert verify(new_secret, hooks.on("/hook")[1])["type"] == "ping"

    # Disable and enable, through the API's own status values.
    assert (await ann.post(f"{detail}/status", {"status": "disabled"})).status_code == 303
    page = await ann.get(detail)
    assert '<dd id="webhook-status">disabled</dd>' in page.text
    assert "Disabled by its owner" in page.text
    assert (await ann.post(f"{detail}/status", {"status": "gone"})).status_code == 400
    assert (await ann.post(f"{detail}/status", {"status": "active"})).status_code == 303
    assert '<dd id="webhook-status">active</dd>' in (await ann.get(detail)).text

    # Bob: never listed, and 404 for every page and action about Ann's webhook.
    assert webhook_id not in (await bob.get("/console/webhooks")).text
    assert url not in (await bob.get("/console/webhooks")).text
    assert (await bob.get(detail)).status_code == 404
    actions: list[tuple[str, dict[str, str]]] = [
        ("rotate", {}), ("test", {}), ("status", {"status": "disabled"}), ("delete", {}),
    ]  # fmt: skip
    for action, data in actions:
        response = await bob.post(f"{detail}/{action}", data)
        assert response.status_code == 404, (action, response.text)
    kept = await stored_webhook(app, webhook_id)
    assert kept is not None
    assert (kept.secret, kept.status) == (new_secret, "active")
    deliveries = await count(app, WebhookDelivery)
    assert deliveries == 2

    # CSRF: without the token nothing is created, sent or deleted.
    forged = await ann.post("/console/webhooks", {"url": url, "events": ["image.created"]},
                            token=False)  # fmt: skip
    assert forged.status_code == 403
    for action in ("rotate", "test", "delete"):
        assert (await ann.post(f"{detail}/{action}", token=False)).status_code == 403
    assert await count(app, Webhook) == 1
    assert await count(app, WebhookDelivery) == deliveries
    kept = await stored_webhook(app, webhook_id)
    assert kept is not None
    assert kept.secret == new_secret

    # Delete: gone from the list, its page 404.
    deleted = await ann.post(f"{detail}/delete")
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/console/webhooks"
    assert (await ann.get(detail)).status_code == 404
    assert "No webhooks yet." in (await ann.get("/console/webhooks")).text
    assert await count(app, Webhook) == 0
