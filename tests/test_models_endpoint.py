"""`GET /api/v1/models`: `type` is required and checked."""

from __future__ import annotations

import httpx

from conftest import MakeAccount
from helpers import bearer


async def test_lists_are_plain_arrays(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account("free")
    for kind in ("llm", "sd"):
        response = await client.get(f"/api/v1/models?type={kind}", headers=bearer(creds))
        assert response.status_code == 200
        assert isinstance(response.json(), list)
