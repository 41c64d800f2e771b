"""The console's admin pages, over HTTP: only admins get in; what they change there is what
the API and the CLI then see."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from typer.testing import CliRunner

from conftest import make_client
from helpers import bearer
from personae.account.service import AccountService, Credentials
from personae.account.signin import SignIn
from personae.app import create_app
from personae.cli.main import app as cli
from personae.config import Settings
from personae.model.service import EMBEDDED_LLM
from personae.models import Account
from personae.state import AppState

PASSWORD = "a long enough password"
ADMIN = "/console/admin"
PAGES = [ADMIN, f"{ADMIN}/accounts", f"{ADMIN}/plans", f"{ADMIN}/models"]


@pytest.fixture
def signup() -> str:
    return "open"


@pytest.fixture
def settings(tmp_path: Path, signup: str) -> Settings:
    """SQLite only; plain-HTTP cookies for the test client's `http://testserver`."""
    return Settings(
        data_dir=tmp_path / "data",
        public_url="http://testserver",
        llm_preload=False,
        console_secure_cookies="never",
        signup=signup,
        _env_file=None,
    )


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


def state_of(app: FastAPI) -> AppState:
    state: AppState = app.state.personae
    return state


def csrf(client: httpx.AsyncClient) -> str:
    return str(client.cookies["personae_csrf"])


async def post(client: httpx.AsyncClient, url: str, **fields: str) -> httpx.Response:
    """A form post with the page's CSRF token (a page was opened before)."""
    return await client.post(url, data={"csrf": csrf(client), **fields})


async def sign_up(client: httpx.AsyncClient, username: str, invite: str = "") -> httpx.Response:
    await client.get("/console/signup")
    fields = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    return await post(client, "/console/signup", **fields, **({"invite": invite} if invite else {}))


async def sign_in(client: httpx.AsyncClient, login: str) -> httpx.Response:
    await client.get("/console/login")
    return await post(client, "/console/login", login=login, password=PASSWORD)


async def make_admin(app: FastAPI, client: httpx.AsyncClient) -> Account:
    """An admin as the operator makes one (`accounts create --admin`, `accounts password`),
    signed in on `client`."""
    async with state_of(app).sessionmaker.begin() as session:
        creds = await AccountService(session).create_account(
            f"boss{uuid.uuid4().hex[:6]}", admin=True
        )
        await SignIn(session, timedelta(0)).set_password(creds.account, PASSWORD)
    assert (await sign_in(client, creds.account.username)).status_code == 303
    return creds.account


async def new_user(app: FastAPI, plan: str = "free") -> Credentials:
    async with state_of(app).sessionmaker.begin() as session:
        return await AccountService(session).create_account(
            f"user{uuid.uuid4().hex[:6]}", plan=plan
        )


async def account(app: FastAPI, ref: str) -> Account:
    async with state_of(app).sessionmaker() as session:
        return await AccountService(session).get(ref)


def row(page: httpx.Response, row_id: str) -> str:
    """The table row `<tr id=row_id>` of a page."""
    found = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', page.text, re.S)
    assert found, f"no row {row_id} in {page.text}"
    return found.group(1)


async def test_only_admins_get_in(app: FastAPI, browser: httpx.AsyncClient) -> None:
    assert (await sign_up(browser, "mallory")).status_code == 303
    me = await account(app, "mallory")
    posts = {
        f"{ADMIN}/accounts/{me.id}/admin": {"admin": "true"},
        f"{ADMIN}/accounts/{me.id}/plan": {"plan": "premium"},
        f"{ADMIN}/accounts/{me.id}/top-up": {"amount": "100"},
        f"{ADMIN}/invites": {},
        f"{ADMIN}/plans/free": {"requests_per_minute": "1000"},
        f"{ADMIN}/models": {"type": "sd", "name": "x", "engine": "placeholder"},
        f"{ADMIN}/models/model_x/disable": {},
        f"{ADMIN}/models/model_x/enable": {},
    }
    for url in PAGES:
        response = await browser.get(url)
        assert response.status_code == 403, url
        assert "Only an admin" in response.text
    for url, fields in posts.items():
        assert (await post(browser, url, **fields)).status_code == 403, url
    after = await account(app, "mallory")
    assert not after.is_admin
    assert after.plan_name == "free"
    assert after.balance_micros == 0
    assert 'href="/console/admin"' not in (await browser.get("/console/keys")).text

    async with make_client(app) as stranger:  # signed out
        await stranger.get("/console/login")
        for url in PAGES:
            response = await stranger.get(url)
            assert response.status_code == 303, url
            assert response.headers["location"].startswith("/console/login?next=")
        for url, fields in posts.items():
            response = await post(stranger, url, **fields)
            assert response.status_code == 303, url
            assert response.headers["location"].startswith("/console/login")


async def test_admin_changes_plan_tops_up_and_makes_admin(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    admin = await make_admin(app, browser)
    carol = (await new_user(app)).account
    page = await browser.get(f"{ADMIN}/accounts")
    assert page.status_code == 200
    assert '<option value="free" selected>' in row(page, f"account-{carol.id}")
    assert "Make admin" in row(page, f"account-{carol.id}")
    assert "Remove admin" not in row(page, f"account-{admin.id}")  # no lock-out by a slip

    base = f"{ADMIN}/accounts/{carol.id}"
    response = await post(browser, f"{base}/plan", plan="enterprise", rate_limit="42")
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}/accounts"
    mine = row(await browser.get(f"{ADMIN}/accounts"), f"account-{carol.id}")
    assert '<option value="enterprise" selected>' in mine
    assert 'value="42"' in mine
    assert (await account(app, carol.id)).effective_rate_limit == 42

    assert (await post(browser, f"{base}/top-up", amount="2.5")).status_code == 303
    assert "2.5000" in row(await browser.get(f"{ADMIN}/accounts"), f"account-{carol.id}")
    assert (await account(app, carol.id)).balance_micros == 2_500_000

    assert (await post(browser, f"{base}/admin", admin="true")).status_code == 303
    assert "Remove admin" in row(await browser.get(f"{ADMIN}/accounts"), f"account-{carol.id}")
    assert (await account(app, carol.id)).is_admin
    assert (await post(browser, f"{base}/admin", admin="false")).status_code == 303
    assert not (await account(app, carol.id)).is_admin

    # The services' refusals, as pages with their status; nothing changes.
    for url, fields, status in [
        (f"{base}/top-up", {"amount": "lots"}, 400),
        (f"{base}/top-up", {"amount": "-1"}, 400),
        (f"{base}/plan", {"plan": "gold"}, 400),
        (f"{ADMIN}/accounts/nobody/top-up", {"amount": "1"}, 404),
    ]:
        response = await post(browser, url, **fields)
        assert response.status_code == status, (url, fields)
        assert '<div class="error" role="alert">' in response.text
    after = await account(app, carol.id)
    assert after.balance_micros == 2_500_000
    assert after.plan_name == "enterprise"


async def test_accounts_are_paged_by_100(app: FastAPI, browser: httpx.AsyncClient) -> None:
    admin = await make_admin(app, browser)
    async with state_of(app).sessionmaker.begin() as session:
        service = AccountService(session)
        for n in range(100):
            await service.new_account(f"many{n:03d}")
    first = await browser.get(f"{ADMIN}/accounts")
    assert first.text.count('<tr id="account-') == 100
    assert f"account-{admin.id}" in first.text
    assert 'href="/console/admin/accounts?offset=100" rel="next"' in first.text
    second = await browser.get(f"{ADMIN}/accounts?offset=100")
    assert second.text.count('<tr id="account-') == 1
    assert "many099" in second.text
    assert 'rel="next"' not in second.text
    assert 'href="/console/admin/accounts?offset=0" rel="prev"' in second.text


@pytest.mark.parametrize("signup", ["invite"])
async def test_invite_lets_someone_sign_up(app: FastAPI, browser: httpx.AsyncClient) -> None:
    await make_admin(app, browser)
    await browser.get(f"{ADMIN}/accounts")
    response = await post(browser, f"{ADMIN}/invites")
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}/accounts#invites"
    page = await browser.get(f"{ADMIN}/accounts")
    codes = re.findall(r"<tr><td><code>([^<]+)</code>", page.text)
    assert len(codes) == 1
    assert "not yet" in page.text

    async with make_client(app) as newcomer:
        refused = await sign_up(newcomer, "newbie")
        assert refused.status_code == 403
        assert (await sign_up(newcomer, "newbie", invite="made-up")).status_code == 403
        welcomed = await sign_up(newcomer, "newbie", invite=codes[0])
        assert welcomed.status_code == 303
        assert (await newcomer.get("/console/keys")).status_code == 200
    async with make_client(app) as another:
        assert (await sign_up(another, "second", invite=codes[0])).status_code == 403
    assert "not yet" not in (await browser.get(f"{ADMIN}/accounts")).text


async def test_plan_edit_changes_the_rate_limit(app: FastAPI, browser: httpx.AsyncClient) -> None:
    await make_admin(app, browser)
    user = await new_user(app, "free")
    page = await browser.get(f"{ADMIN}/plans")
    assert 'id="rpm-free" form="edit-free" name="requests_per_minute"' in page.text
    fields = {"requests_per_minute": "7", "chat_requests_per_month": "600",
              "characters_api": "basic"}  # fmt: skip
    response = await post(browser, f"{ADMIN}/plans/free", **fields)
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}/plans"
    free = row(await browser.get(f"{ADMIN}/plans"), "plan-free")
    assert 'value="7"' in free
    assert 'value="600"' in free
    assert '<option value="basic" selected>' in free
    assert "checked" not in free

    api = await browser.get("/api/v1/models?type=llm", headers=bearer(user))
    assert api.status_code == 200
    assert api.headers["X-RateLimit-Limit"] == "7"

    assert (await post(browser, f"{ADMIN}/plans/free", requests_per_minute="0")).status_code == 400
    assert (await post(browser, f"{ADMIN}/plans/gold", requests_per_minute="9")).status_code == 400
    assert 'value="7"' in row(await browser.get(f"{ADMIN}/plans"), "plan-free")


async def test_disable_and_enable_a_model(app: FastAPI, browser: httpx.AsyncClient) -> None:
    await make_admin(app, browser)
    user = await new_user(app)

    async def offered() -> list[str]:
        response = await browser.get("/api/v1/models?type=llm", headers=bearer(user))
        assert response.status_code == 200
        return [m["id"] for m in response.json()]

    [model_id] = await offered()
    page = await browser.get(f"{ADMIN}/models")
    assert "enabled" in row(page, f"model-{model_id}")
    response = await post(browser, f"{ADMIN}/models/{model_id}/disable")
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}/models"
    assert await offered() == []
    assert ">disabled<" in row(await browser.get(f"{ADMIN}/models"), f"model-{model_id}")
    assert model_id not in (await browser.get(ADMIN)).text  # no longer an enabled model

    assert (await post(browser, f"{ADMIN}/models/{model_id}/enable")).status_code == 303
    assert await offered() == [model_id]
    assert (await post(browser, f"{ADMIN}/models/model_nope/enable")).status_code == 404


async def test_add_a_model(app: FastAPI, browser: httpx.AsyncClient) -> None:
    await make_admin(app, browser)
    user = await new_user(app)
    await browser.get(f"{ADMIN}/models")
    fields = {"type": "sd", "name": "Sketches", "engine": "placeholder", "cost": "0.02"}
    response = await post(browser, f"{ADMIN}/models", **fields)
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}/models"
    images = await browser.get("/api/v1/models?type=sd", headers=bearer(user))
    [added] = [m for m in images.json() if m["name"] == "Sketches"]
    assert added["cost_per_image"] == 0.02
    assert "0.0200 per image" in row(await browser.get(f"{ADMIN}/models"), f"model-{added['id']}")

    llm = {"type": "llm", "name": "Remote", "engine": "openai", "max_context": "4096",
           "settings": '{"base_url": "http://127.0.0.1:9/v1", "model": "m"}'}  # fmt: skip
    assert (await post(browser, f"{ADMIN}/models", **llm)).status_code == 303
    listed = await browser.get("/api/v1/models?type=llm", headers=bearer(user))
    [remote] = [m for m in listed.json() if m["name"] == "Remote"]
    assert remote["max_context"] == 4096

    # Refused (by the form's JSON, by the service): the form comes back as it was typed.
    for changes, status, message in [
        ({"settings": "{not json"}, 400, "settings: not JSON"),
        ({"settings": "[1]"}, 400, "settings: must be a JSON object"),
        ({"engine": "warp"}, 400, "unknown LLM engine"),
        ({"settings": "{}"}, 400, "base_url"),
        ({"cost": "free"}, 400, "amount: not a number"),
        ({"max_context": "10"}, 400, "max_context: at least 256"),
    ]:
        response = await post(browser, f"{ADMIN}/models", **(llm | changes))
        assert response.status_code == status, changes
        assert message in response.text, (changes, response.text)
        assert 'value="Remote"' in response.text
    assert (await browser.get(f"{ADMIN}/models")).text.count("<td>Remote</td>") == 1


async def test_health_page(app: FastAPI, browser: httpx.AsyncClient) -> None:
    await make_admin(app, browser)
    page = await browser.get(ADMIN)
    assert page.status_code == 200
    assert EMBEDDED_LLM["name"] in page.text
    assert "not loaded" in page.text
    assert re.search(r'<dd id="queue-depth">\d+</dd>', page.text)
    assert '<dd id="database">ok</dd>' in page.text
    assert '<dd id="redis">not configured</dd>' in page.text
    for href in PAGES[1:]:
        assert f'href="{href}"' in page.text


def test_cli_makes_an_admin_who_signs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PERSONAE_DATABASE_URL", raising=False)
    runner = CliRunner()
    for args in (
        ["accounts", "create", "--username", "root"],
        ["accounts", "admin", "root"],
        ["accounts", "password", "root", "--password", PASSWORD],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output

    async def visit() -> tuple[int, int]:
        settings = Settings(
            data_dir=tmp_path, console_secure_cookies="never", llm_preload=False, _env_file=None
        )
        application = create_app(settings)
        async with LifespanManager(application), make_client(application) as client:
            signed = await sign_in(client, "root")
            return signed.status_code, (await client.get(ADMIN)).status_code

    assert asyncio.run(visit()) == (303, 200)
