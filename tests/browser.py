"""What the console's browser tests share: Debian's Chromium driven by Playwright, a live
server of their own, the screenshots a test leaves behind, and the console's flows that
several tests go through (sign up, create a key, create a character).

Chromium is the system's (`PERSONAE_CHROMIUM`, which `make test` sets after installing
Debian's `chromium` package when missing), never the build Playwright downloads: Playwright
drives it over the DevTools protocol, which a newer Chromium than its own still speaks.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FilePayload,
    Page,
    ViewportSize,
    expect,
)

from live_server import cli

CHROMIUM = os.environ.get("PERSONAE_CHROMIUM", "/usr/bin/chromium")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"


def launch(playwright: Any) -> Browser:
    """Headless Chromium from `PERSONAE_CHROMIUM`; a clear failure when there is none."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make chromium` installs Debian's package "
            "(or set PERSONAE_CHROMIUM to a Chromium executable)"
        )
    browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    # The one asked for, not Playwright's own build (its `executable_path` names that one).
    said = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True)
    assert browser.version in said.stdout, (browser.version, said.stdout)
    return browser


class Screenshots:
    """Every page a test visits, saved as `NN-name.png` in its tmp_path in the order taken,
    with a line saying what it shows: `screenshots.txt` and the test's log list them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[tuple[str, str]] = []

    def take(self, page: Page, name: str, shows: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append((path.name, shows))
        return path

    def index(self) -> str:
        """Writes `screenshots.txt`; its text."""
        text = "".join(f"{name}: {shows}\n" for name, shows in self.taken)
        (self.folder / "screenshots.txt").write_text(text)
        return f"screenshots in {self.folder}:\n{text}"


@contextmanager
def console_page(browser: Browser, base: str, viewport: ViewportSize) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies from another test). What the page's
    own console says in error (a script failing, a CSP violation) fails the test."""
    context: BrowserContext = browser.new_context(viewport=viewport, base_url=base)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("console", lambda message: _console_error(message, errors))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page reported errors: {errors}"


def _console_error(message: ConsoleMessage, errors: list[str]) -> None:
    # A page answered with an error status (the 401 of a wrong password) is logged as a
    # failed load: the tests expect those and check the status themselves.
    if message.type == "error" and "Failed to load resource" not in message.text:
        errors.append(message.text)


@dataclass
class ConsoleServer:
    """A live `personae serve` (tests/live_server.py) and the operator's CLI against it."""

    base: str
    env: dict[str, str]

    def set_plan(self, username: str, plan: str = "premium") -> None:
        cli(self.env, "accounts", "set-plan", username, plan)

    def top_up(self, username: str, amount: str = "10") -> None:
        cli(self.env, "accounts", "top-up", username, amount)


@dataclass
class User:
    username: str = field(default_factory=lambda: f"web-{uuid.uuid4().hex[:10]}")
    password: str = PASSWORD

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


def sign_up(page: Page, shots: Screenshots) -> User:
    """A new account through /console/signup; the browser is then on /console/keys."""
    user = User()
    page.goto("/console/signup")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    shots.take(page, "signup", "the sign-up form, filled in")
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("**/console/keys?welcome=1")
    expect(page.get_by_role("status")).to_contain_text(f"Welcome, {user.username}")
    shots.take(page, "welcome", "the API keys page right after sign-up, with its welcome")
    return user


def create_key(page: Page, shots: Screenshots, name: str) -> str:
    """A new API key made at /console/keys; its plaintext, shown once in `#new-key`."""
    if not page.url.endswith("/console/keys"):
        page.goto("/console/keys")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    plaintext = page.locator("#new-key").inner_text().strip()
    assert plaintext
    shots.take(page, f"key-{name}", f"the key “{name}” just created, shown once, with its curl")
    return plaintext


def png(size: int = 96) -> bytes:
    """An avatar drawn here (a gradient with a disc), never a file of the repository."""
    image = Image.new("RGB", (size, size))
    image.putdata(
        [(x * 255 // size, y * 255 // size, 160) for y in range(size) for x in range(size)]
    )
    disc = Image.new("L", (size, size), 0)
    disc.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    image.paste((250, 220, 40), mask=disc)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def create_character(page: Page, shots: Screenshots, name: str, image: bytes | None = None) -> str:
    """A character made with the form at /console/characters/new; its id (the browser is
    then on its page)."""
    page.goto("/console/characters/new")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Description").fill(f"{name}, a lighthouse keeper who answers briefly.")
    page.get_by_label("Personality").fill("Calm, precise, fond of weather reports.")
    page.get_by_label("Background").fill("Has kept the same light on a northern cape for years.")
    page.get_by_label("Greeting").fill("The lamp is lit. What brings you here?")
    page.get_by_label("Tags").fill("sea, mentor")
    if image is not None:
        avatar: FilePayload = {"name": "avatar.png", "mimeType": "image/png", "buffer": image}
        page.get_by_label("Image").set_input_files(avatar)
    shots.take(page, "character-form", f"the new-character form filled in for {name}")
    page.get_by_role("button", name="Create character").click()
    page.wait_for_url(re.compile(r"/console/characters/[^/?#]+$"))
    character_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert character_id != "new"
    return character_id


def overflows(page: Page) -> bool:
    """Whether the page is wider than the window (a horizontal scroll bar on a phone)."""
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))
