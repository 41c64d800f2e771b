"""The console's isolation matrix, generated from its route table like the API's
(tests/test_isolation_matrix.py): account A owns one object of each kind; signed-in account
B asks for each on every console route whose path names one, GET and POST, and gets what
it gets for an id that nothing has (404), with none of A's ids in the page. A console
route whose path parameter this test cannot fill fails it, so a new page is covered as
soon as it exists."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from conftest import MakeAccount, make_client
from console_helpers import csrf, sign_up
from personae.account.service import AccountService
from personae.config import Settings
from test_console import as_account
from test_isolation_matrix import KINDS, answer, missing_like, owned_objects, routes_with_path_ids

#: the console's own path parameters -> what fills them
CONSOLE_KINDS = KINDS | {"key_id": "key"}
#: parameters that name no object of A's: the same value for A's turn and the missing one
FIXED = {"action": "like", "model_id": "model_x", "name": "free", "ref": "nobody"}
#: one form that every console POST reads what it needs from, so the request gets past
#: its form's checks to the lookup
FORM = {
    "name": "Renamed", "description": "d", "personality": "p", "background": "b",
    "message": "Hello", "prompt": "a cat", "book": "{}", "url": "http://127.0.0.1:9/hook",
    "events": "message.created", "status": "disabled", "plan": "free", "amount": "1",
    "admin": "true",
}  # fmt: skip


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A's webhook points at loopback, which only `webhook_allow_private` allows.
    return settings.model_copy(
        update={"console_secure_cookies": "never", "webhook_allow_private": True}
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_another_accounts_objects_are_not_reachable_in_the_console(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner = await make_account("premium")
    objects = await owned_objects(client, owner)
    async with app.state.personae.sessionmaker() as session:
        [key] = await AccountService(session).list_keys(owner.account)
    objects["key"] = key.id
    routes = routes_with_path_ids(app, "/console")
    unknown = sorted({p for r in routes for p in r.params} - set(CONSOLE_KINDS) - set(FIXED))
    assert not unknown, f"path parameters the matrix cannot fill: {unknown}"
    assert len(routes) >= 20  # the console's real route table

    async with make_client(app) as other:
        other_name = await sign_up(other)
        await as_account(app, other_name, "premium")  # the plan cannot be the reason
        token = await csrf(other, "/console")
        for route in routes:
            theirs = {p: objects[CONSOLE_KINDS[p]] for p in route.params if p not in FIXED}
            missing = {p: missing_like(v) for p, v in theirs.items()}
            fixed = {p: FIXED[p] for p in route.params if p in FIXED}
            theirs, missing = theirs | fixed, missing | fixed
            if route.path.endswith("/stream"):
                kwargs: dict[str, object] = {"json": {"message": "Hello"},
                                             "headers": {"X-CSRF-Token": token}}  # fmt: skip
            elif route.method == "POST":
                kwargs = {"data": FORM | {"csrf": token}}
            else:
                kwargs = {}
            got = await other.request(route.method, route.url(theirs), **kwargs)
            expected = await other.request(route.method, route.url(missing), **kwargs)
            label = f"{route.method} {route.path}"
            admin_only = route.path.startswith("/console/admin")
            assert got.status_code == (403 if admin_only else 404), f"{label}: {got.status_code}"
            assert answer(got, theirs) == answer(expected, missing), label

        # Nor in any list B sees.
        for page in ("/console", "/console/keys", "/console/characters?view=mine",
                     "/console/characters?view=favorites", "/console/characters?q=private",
                     "/console/chat", "/console/images", "/console/webhooks"):  # fmt: skip
            shown = await other.get(page)
            assert shown.status_code == 200, page
            for kind, value in objects.items():
                assert value not in shown.text, (page, kind)

    agent = await client.get(f"/api/v1/agents/{objects['character']}",
                             headers={"Authorization": f"Bearer {owner.plaintext}"})  # fmt: skip
    assert agent.json()["name"] == "Private"


#: what a browser without a session may use
PUBLIC = {
    ("GET", "/console/"), ("GET", "/console/signup"), ("POST", "/console/signup"),
    ("GET", "/console/login"), ("POST", "/console/login"), ("POST", "/console/logout"),
}  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_console_route_but_signing_in_demands_a_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """From the route table, so a page added later is covered: without a session, a page
    sends the browser to the sign-in form (and back afterwards), and a form post with a
    valid CSRF token does the same, having done nothing."""
    token = await csrf(client)
    checked = 0
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith("/console") or not route.methods:
            continue
        for method in route.methods - {"HEAD"}:
            if (method, path) in PUBLIC:
                continue
            url = re.sub(r"\{[^}]+\}", "x1", path)
            kwargs = {"data": {"csrf": token}} if method == "POST" else {}
            response = await client.request(method, url, **kwargs)
            assert response.status_code == 303, (method, path, response.text[:300])
            back = url if method == "GET" else "/console"  # never to a POST-only URL
            assert response.headers["location"] == f"/console/login?next={quote(back, safe='')}"
            checked += 1
    assert checked >= 40, checked
    # A form whose session ended meanwhile: back to the page it was on, once signed in.
    referer = {"referer": "http://testserver/console/characters/char_x1"}
    ended = await client.post("/console/keys", data={"csrf": token, "name": "k"}, headers=referer)
    assert ended.headers["location"] == "/console/login?next=%2Fconsole%2Fcharacters%2Fchar_x1"
    elsewhere = {"referer": "http://evil.example/console/keys"}
    ended = await client.post("/console/keys", data={"csrf": token, "name": "k"}, headers=elsewhere)
    assert ended.headers["location"] == "/console/login?next=%2Fconsole"
