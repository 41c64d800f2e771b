"""`GET /v1/user/me` and the plan gate on the characters API."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from conftest import MakeAccount
from helpers import bearer, characters_error, x_api_key
from personae.account.service import month_period
from personae.models import MonthlyUsage


async def test_user_me_shape(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account(
        "standard", username="current_user", email="user@example.com", balance="12.5"
    )
    response = await client.get("/v1/user/me", headers=x_api_key(creds))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == creds.account.id
    assert body["id"].startswith("user_")
    assert body["username"] == "current_user"
    assert body["email"] == "user@example.com"
    assert body["balance"] == 12.5
    assert body["created_at"].endswith("Z")
    sub = body["subscription"]
    assert sub["plan"] == "standard"
    assert sub["status"] == "active"
    assert sub["chat_requests"]["used"] == 0
    assert sub["chat_requests"]["limit"] == 7500
    reset = datetime.fromisoformat(sub["chat_requests"]["reset_date"])
    now = datetime.now(UTC)
    assert reset.day == 1
    assert reset.hour == 0
    assert reset > now
    assert (reset - now).days <= 31
    assert body["stats"] == {"characters_created": 0, "conversations": 0, "favorites": 0}


async def test_user_me_counts_this_months_chat_requests(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("premium")
    async with app.state.personae.sessionmaker.begin() as session:
        session.add(
            MonthlyUsage(
                account_id=creds.account.id,
                period=month_period(datetime.now(UTC)),
                chat_requests=42,
            )
        )
        session.add(MonthlyUsage(account_id=creds.account.id, period="2001-01", chat_requests=999))
    body = (await client.get("/v1/user/me", headers=x_api_key(creds))).json()
    assert body["subscription"]["chat_requests"] == {
        "used": 42,
        "limit": 25000,
        "reset_date": body["subscription"]["chat_requests"]["reset_date"],
    }


async def test_free_plan_has_no_characters_api(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account("free")
    for headers in (x_api_key(creds), bearer(creds)):
        error = characters_error(
            await client.get("/v1/user/me", headers=headers), 403, "subscription_required"
        )
        assert error["details"]["plan"] == "free"
    # The agents API stays open to it.
    assert (await client.get("/api/v1/models?type=sd", headers=bearer(creds))).status_code == 200


async def test_each_paid_plan_reaches_the_characters_api(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    for plan in ("pro", "standard", "premium", "enterprise"):
        creds = await make_account(plan)
        response = await client.get("/v1/user/me", headers=x_api_key(creds))
        assert response.status_code == 200, plan
        assert response.json()["subscription"]["plan"] == plan
