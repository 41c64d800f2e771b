"""The account's own pages: usage (the overview) and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from personae.account.service import AccountService, UsageReport
from personae.api.deps import SessionDep, SettingsDep
from personae.console.chart import bar_chart
from personae.console.web import ActingAccount, ConsoleAccount, check_csrf, redirect, render
from personae.model.service import ModelService

router = APIRouter(dependencies=[Depends(check_csrf)])


async def overview(request: Request, account: ConsoleAccount, session: SessionDep) -> Response:
    """`/console` itself (registered in console/routes.py: a router cannot hold an empty path)."""
    report: UsageReport = await AccountService(session).usage_report(account)
    cost_chart = bar_chart(
        [(line.day[-2:], line.cost_micros / 1_000_000) for line in report.by_day],
        title="Cost per day this month",
    )
    requests_chart = bar_chart(
        [(line.day[-2:], line.requests) for line in report.by_day],
        title="Requests per day this month",
    )
    # A model removed since keeps its id in the ledger, and is shown by it.
    names = {model.id: model.name for model in await ModelService(session).list_all()}
    context = {"report": report, "cost_chart": cost_chart, "requests_chart": requests_chart,
               "model_names": names}  # fmt: skip
    return render(request, "overview.html", context)


@router.get("/keys")
async def keys(
    request: Request, account: ConsoleAccount, session: SessionDep, welcome: bool = False
) -> Response:
    listed = await AccountService(session).list_keys(account)
    return render(request, "keys.html", {"keys": listed, "welcome": welcome})


@router.post("/keys")
async def create_key(
    request: Request,
    account: ActingAccount,
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str, Form(min_length=1, max_length=100)],
) -> Response:
    service = AccountService(session)
    created = await service.create_key(account, name.strip() or None)
    listed = await service.list_keys(account)
    # Shown on this response only: never stored, never in a URL.
    context = {"keys": listed, "created": created, "api_base": settings.resolved_public_url}
    return render(request, "keys.html", context, status=201)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, account: ActingAccount, session: SessionDep) -> Response:
    await AccountService(session).revoke_own_key(account, key_id)
    return redirect("/console/keys")
