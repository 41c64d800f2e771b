"""The web console in a real browser: headless Chromium (Debian's, see tests/browser.py)
against a real `personae serve`, going through what a person does: sign up, make an API key
and call the API with it, sign out and in, create a character with an avatar, chat with it
in the playground (streamed), and watch a webhook's test delivery arrive in its log.

Every page visited is saved as a screenshot in the test's tmp_path (`screenshots.txt` says
what each shows; the test's log lists them too).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from standardwebhooks.webhooks import Webhook as Verifier

from browser import (
    DESKTOP,
    PHONE,
    ConsoleServer,
    Screenshots,
    console_page,
    create_character,
    create_key,
    launch,
    overflows,
    png,
    sign_up,
)
from live_server import serving
from webhook_receiver import receiver

# The embedded model on a CI machine's two cores: first words can take a while.
ANSWER_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """One server for the module: open sign-up, short answers, webhooks to loopback."""
    data = tmp_path_factory.mktemp("console-browser")
    with (
        (data / "server.log").open("wb") as log,
        serving(
            data,
            log,
            signup="open",
            chat_max_tokens="48",
            webhook_allow_private="true",
        ) as (base, env, _),
    ):
        yield ConsoleServer(base, env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Screenshots]:
    taken = Screenshots(tmp_path)
    yield taken
    with capsys.disabled():  # in the run's log whether the test passed or not
        print(f"\n{taken.index()}", end="")  # noqa: T201


@pytest.fixture
def page(browser: Browser, server: ConsoleServer) -> Iterator[Page]:
    with console_page(browser, server.base, DESKTOP) as desktop:
        yield desktop


def test_sign_up_create_a_key_call_the_api_and_revoke_it(
    page: Page, server: ConsoleServer, shots: Screenshots
) -> None:
    user = sign_up(page, shots)
    key = create_key(page, shots, "first")
    # The command the page offers to try, sent as it is: it works on the free plan.
    curl = page.locator("#try-it").inner_text()
    tried = re.fullmatch(r'curl -H "([\w-]+): ([^"]+)" (\S+)', curl.strip())
    assert tried, curl
    header, value, url = tried.groups()
    assert key in value
    assert url.startswith(f"{server.base}/")
    assert httpx.get(url, headers={header: value}).status_code == 200
    # The characters API (/v1) says who the key belongs to; it needs a paid plan.
    server.set_plan(user.username)
    me = httpx.get(f"{server.base}/v1/user/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["username"] == user.username

    row = page.locator("#keys tbody tr", has_text="first")
    expect(row).to_contain_text(key[:8])
    prefix = row.locator("code").inner_text()
    assert key.startswith(prefix)
    expect(row).to_contain_text("live")
    page.get_by_role("button", name="Revoke key first").click()
    expect(row).to_contain_text("revoked")
    shots.take(page, "revoked", "the keys table with the key “first” revoked")
    assert httpx.get(url, headers={header: value}).status_code == 401
    me = httpx.get(f"{server.base}/v1/user/me", headers={"X-API-Key": key})
    assert me.status_code == 401


def test_sign_out_then_sign_in(page: Page, shots: Screenshots) -> None:
    user = sign_up(page, shots)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    page.goto("/console/keys")  # signed out: the console asks to sign in
    page.wait_for_url(re.compile(r"/console/login"))
    shots.take(page, "signed-out", "the sign-in form a signed-out visitor is sent to")

    page.get_by_label("Username or email").fill(user.username)
    page.get_by_label("Password").fill("not the password")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/console/login")
    ) as refused:
        page.get_by_role("button", name="Sign in").click()
    assert refused.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("401")
    shots.take(page, "wrong-password", "sign-in refused: the error box for a wrong password")

    page.get_by_label("Username or email").fill(user.email)  # an email signs in too
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/keys$"))  # where the sign-in was asked for
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url(re.compile(r"/console$"))
    expect(page.locator("main")).to_contain_text("Chat requests this month")
    expect(page.locator("#chat-requests")).to_have_text(re.compile(r"^0 of "))
    expect(page.locator(".who")).to_contain_text(user.username)
    shots.take(page, "usage", "the usage page after signing in again: nothing used yet")


def test_create_a_character_with_an_image(page: Page, shots: Screenshots) -> None:
    sign_up(page, shots)
    character_id = create_character(page, shots, "Ada Lamp", png())
    assert page.url.endswith(f"/console/characters/{character_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lamp")
    avatar = page.locator("img.avatar")
    expect(avatar).to_be_visible()
    avatar.evaluate("img => img.decode()")  # waits for the image; rejects if it cannot load
    assert avatar.evaluate("img => img.naturalWidth") > 0
    expect(page.get_by_role("list", name="Tags")).to_contain_text("mentor")
    shots.take(page, "character", "the new character's page, with the uploaded avatar")

    page.get_by_role("link", name="Characters").click()
    page.get_by_role("link", name="Mine", exact=True).click()
    page.wait_for_url("**/console/characters?view=mine")
    expect(page.get_by_role("link", name="Ada Lamp")).to_be_visible()
    shots.take(page, "my-characters", "the list of one's own characters, with the new one")


def test_streamed_chat_in_the_playground(
    page: Page, server: ConsoleServer, shots: Screenshots
) -> None:
    user = sign_up(page, shots)
    server.set_plan(user.username)
    server.top_up(user.username)
    key = create_key(page, shots, "reader")
    character_id = create_character(page, shots, "Brief Bo")
    shots.take(page, "character", "the character's page, with its chat link")
    page.get_by_role("link", name="Chat with Brief Bo").click()
    page.wait_for_url(f"**/console/chat/{character_id}")
    shots.take(page, "playground", "the playground before the first message")

    page.get_by_label("Message").fill("Hello! Say hi in five words.")
    page.get_by_label("Show thought process").check()
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages li.user").last).to_contain_text("Hello! Say hi in five words.")
    answer = page.locator("#messages li.agent").last
    expect(answer).to_have_attribute("data-streaming", "true")
    # Its first words, then a picture of it half-written (a fast machine may have finished).
    page.wait_for_function(
        "li => Number(li.dataset.deltas) >= 2 || 'messageId' in li.dataset",
        arg=answer.element_handle(),
        timeout=ANSWER_TIMEOUT_MS,
    )
    shots.take(page, "streaming", "the answer while its words stream in")
    expect(answer).to_have_attribute("data-message-id", re.compile("."), timeout=ANSWER_TIMEOUT_MS)
    expect(answer).not_to_have_attribute("data-streaming", "true")
    shots.take(page, "answered", "the finished answer, with the thought process below it")

    deltas = int(answer.get_attribute("data-deltas") or 0)
    assert deltas > 1, "the answer came in one piece, not streamed"
    text = answer_text(answer)
    assert text
    expect(answer.locator("details.thought")).to_have_count(1)
    conversation_id = answer.get_attribute("data-conversation-id")
    message_id = answer.get_attribute("data-message-id")
    stored = httpx.get(
        f"{server.base}/v1/chat/conversations/{conversation_id}/messages",
        headers={"X-API-Key": key},
    )
    assert stored.status_code == 200
    by_id = {m["id"]: m for m in stored.json()["data"]}
    assert by_id[message_id]["is_character"] is True
    assert by_id[message_id]["content"].strip() == text

    page.get_by_role("link", name="Usage").click()
    page.wait_for_url(re.compile(r"/console$"))
    expect(page.locator("#chat-requests")).to_have_text(re.compile(r"^1 of "))
    expect(page.locator("#by-model tbody tr")).not_to_have_count(0)
    shots.take(page, "usage", "the usage page after one chat: 1 request, a row by model")


def test_a_webhook_test_delivery_shows_in_its_log(
    page: Page, server: ConsoleServer, shots: Screenshots
) -> None:
    user = sign_up(page, shots)
    server.set_plan(user.username)  # webhooks are a Premium feature
    with receiver() as hooks:
        page.get_by_role("link", name="Webhooks").click()
        page.wait_for_url("**/console/webhooks")
        page.get_by_label("URL").fill(f"{hooks.base}/hook")
        page.get_by_label("character.created").check()
        page.get_by_label("Description").fill("the browser test's receiver")
        shots.take(page, "webhooks", "the webhooks page with the new webhook's form filled in")
        page.get_by_role("button", name="Register").click()
        secret = page.locator("#new-secret").inner_text().strip()
        assert secret.startswith("whsec_")
        expect(page.locator("#webhooks")).to_contain_text(f"{hooks.base}/hook")
        shots.take(page, "registered", "the webhook just registered, its secret shown once")
        page.get_by_role("link", name="Open the webhook").click()
        page.wait_for_url(re.compile(r"/console/webhooks/[^/?#]+$"))
        expect(page.locator("#webhook-status")).to_have_text("active")
        shots.take(page, "webhook", "the webhook's page before the test delivery")

        page.get_by_role("button", name="Send test").click()
        wait_for_row(page, page.locator('#deliveries tr[data-status="succeeded"]'))
        delivered = page.locator("#deliveries tbody tr").first
        expect(delivered).to_contain_text("ping")
        expect(delivered).to_contain_text("HTTP 200")
        shots.take(page, "delivered", "the delivery log: the test (ping) delivered, HTTP 200")

    [ping] = hooks.on("/hook")
    payload = Verifier(secret).verify(ping.body, ping.headers)  # signed with the shown secret
    assert payload["type"] == "ping"
    assert page.url.endswith(f"/console/webhooks/{payload['data']['webhook_id']}")


def wait_for_row(page: Page, row: Locator, timeout: float = 20) -> None:
    """Reload the page until `row` is on it (the page reloads itself while a delivery is
    pending: then only wait)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            expect(row).to_have_count(1, timeout=2_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if page.locator('meta[http-equiv="refresh"]').count() == 0:
            page.reload()


def answer_text(answer: Locator) -> str:
    """An answer's own text, without the thought process shown inside it."""
    return str(
        answer.evaluate(
            """li => [...li.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
                    .map(n => n.textContent).join("").trim()"""
        )
    )


def test_on_a_phone_the_nav_and_forms_fit(
    browser: Browser, server: ConsoleServer, shots: Screenshots
) -> None:
    with console_page(browser, server.base, PHONE) as phone:
        phone.goto("/console/signup")
        assert not overflows(phone)
        user = sign_up(phone, shots)
        nav = phone.get_by_role("navigation", name="Console")
        for label in ("Usage", "API keys", "Characters", "Chat", "Images", "Webhooks"):
            link = nav.get_by_role("link", name=label, exact=True)
            expect(link).to_be_visible()
            box = link.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]
        assert not overflows(phone)
        key = create_key(phone, shots, "phone")
        assert key
        assert not overflows(phone), "the new key or its curl line widens the page"
        for label, path in (("Usage", "/console"), ("Characters", "/console/characters"),
                            ("Chat", "/console/chat"), ("Webhooks", "/console/webhooks")):  # fmt: skip
            nav.get_by_role("link", name=label, exact=True).click()
            phone.wait_for_url(re.compile(re.escape(path) + r"(\?.*)?$"))
            expect(phone.locator(".who")).to_contain_text(user.username)
            shots.take(phone, f"phone-{label.lower()}", f"the {label} page on a 390 px wide phone")
            assert not overflows(phone), f"{path} is wider than the phone"
