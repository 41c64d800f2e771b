"""Driving the console over HTTP, as a browser's forms would: the CSRF cookie's value goes
in each form's `csrf` field (or the `X-CSRF-Token` header), the session cookie follows."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
PASSWORD = "correct horse battery"


async def csrf(client: httpx.AsyncClient, page: str = "/console/login") -> str:
    """The page's CSRF token (a GET sets the cookie the first time)."""
    response = await client.get(page)
    found = CSRF_META.search(response.text)
    assert found is not None, response.text[:500]
    return found.group(1)


async def post(
    client: httpx.AsyncClient, path: str, data: dict[str, Any] | None = None,
    files: dict[str, Any] | None = None, token: str | None = None,
) -> httpx.Response:  # fmt: skip
    token = token or await csrf(client)
    return await client.post(path, data={**(data or {}), "csrf": token}, files=files)


async def sign_up(client: httpx.AsyncClient, username: str | None = None) -> str:
    """A new account signed in on `client`; its username."""
    username = username or f"u{uuid.uuid4().hex[:10]}"
    response = await post(client, "/console/signup", {
        "username": username, "email": f"{username}@example.com", "password": PASSWORD,
    })  # fmt: skip
    assert response.status_code == 303, response.text[:1000]
    assert response.headers["location"] == "/console/keys?welcome=1"
    return username


async def create_key(client: httpx.AsyncClient, name: str = "test") -> str:
    response = await post(client, "/console/keys", {"name": name})
    assert response.status_code == 201, response.text[:1000]
    found = re.search(r'<code id="new-key">([^<]+)</code>', response.text)
    assert found is not None
    return found.group(1)
