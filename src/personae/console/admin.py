"""The console's admin pages: engine health, accounts and invites, plans, models.

Only for accounts with `is_admin` (`AdminAccount`: 403 for everyone else). Each action
calls the service the CLI's command calls (cli/accounts.py, plans.py, models.py), so the
console and `personae …` apply the same rules. Admin actions are the operator's, as the
CLI's are: they are not counted against the admin's own plan's per-minute limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from personae.account.plans import CharactersApi
from personae.account.service import AccountService, parse_amount
from personae.api.deps import ImageServiceDep, SessionDep, StateDep
from personae.api.health import readiness
from personae.console.web import AdminAccount, SignInDep, check_csrf, redirect, render
from personae.engines.image.registry import IMAGE_ENGINES
from personae.engines.llm.registry import LLM_ENGINES
from personae.errors import InvalidRequest, PersonaeError
from personae.model.service import ModelService, ModelType

router = APIRouter(dependencies=[Depends(check_csrf)])
ADMIN = "/console/admin"
PAGE_SIZE = 100
Offset = Annotated[int, Form(ge=0)]
OptionalCount = Annotated[int | None, Form()]


@dataclass(frozen=True)
class EngineRow:
    """An enabled language model and its engine in this process, as `/ready` sees it."""

    model_id: str
    name: str
    engine: str
    state: str  # the engine's ("up", "starting", "down", …), or "not loaded"
    details: dict[str, Any]


@router.get("")
async def health(
    request: Request,
    account: AdminAccount,
    state: StateDep,
    session: SessionDep,
    images: ImageServiceDep,
) -> Response:
    """What `GET /ready` reports, next to every enabled language model (an engine is
    loaded on its first turn unless `PERSONAE_LLM_PRELOAD`), and the image queue's depth."""
    report = await readiness(state)
    loaded = {engine.model_id: engine for engine in report.engines}
    rows = [
        EngineRow(model.id, model.name, model.engine, engine.state, engine.details)
        if (engine := loaded.get(model.id)) is not None
        else EngineRow(model.id, model.name, model.engine, "not loaded", {})
        for model in await ModelService(session).list_enabled(ModelType.LLM)
    ]
    context = {"readiness": report, "engines": rows, "queue_depth": await images.queue_depth()}
    return render(request, "admin/index.html", context)


# Accounts and invites


@router.get("/accounts")
async def accounts(
    request: Request,
    account: AdminAccount,
    session: SessionDep,
    signin: SignInDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    service = AccountService(session)
    listed = list(await service.list(offset, PAGE_SIZE + 1))  # one more: is there a next page?
    context = {
        "accounts": listed[:PAGE_SIZE],
        "offset": offset,
        "page_size": PAGE_SIZE,
        "more": len(listed) > PAGE_SIZE,
        "plans": await service.list_plans(),
        "invites": await signin.invites(),
    }
    return render(request, "admin/accounts.html", context)


def _back(offset: int) -> str:
    return f"{ADMIN}/accounts" + (f"?offset={offset}" if offset else "")


@router.post("/accounts/{ref}/plan")
async def set_plan(
    ref: str,
    account: AdminAccount,
    session: SessionDep,
    plan: Annotated[str, Form(max_length=64)],
    rate_limit: OptionalCount = None,
    monthly_chat_requests: OptionalCount = None,
    offset: Offset = 0,
) -> Response:
    """As `personae accounts set-plan`: the account's own limits are those of the form
    (left empty, the plan's)."""
    service = AccountService(session)
    await service.set_plan(await service.get(ref), plan, rate_limit, monthly_chat_requests)
    return redirect(_back(offset))


@router.post("/accounts/{ref}/top-up")
async def top_up(
    ref: str,
    account: AdminAccount,
    session: SessionDep,
    amount: Annotated[str, Form(max_length=32)],
    offset: Offset = 0,
) -> Response:
    value = parse_amount(amount.strip())
    service = AccountService(session)
    await service.top_up(await service.get(ref), value)
    return redirect(_back(offset))


@router.post("/accounts/{ref}/admin")
async def set_admin(
    ref: str,
    account: AdminAccount,
    session: SessionDep,
    admin: Annotated[bool, Form()],
    offset: Offset = 0,
) -> Response:
    service = AccountService(session)
    await service.set_admin(await service.get(ref), admin)
    return redirect(_back(offset))


@router.post("/invites")
async def create_invite(account: AdminAccount, signin: SignInDep) -> Response:
    """A single-use sign-up code (for `PERSONAE_SIGNUP=invite`), listed on the accounts page."""
    await signin.create_invite(by=account)
    return redirect(f"{ADMIN}/accounts#invites")


# Plans


@router.get("/plans")
async def plans(request: Request, account: AdminAccount, session: SessionDep) -> Response:
    listed = await AccountService(session).list_plans()
    return render(request, "admin/plans.html", {"plans": listed})


@router.post("/plans/{name}")
async def update_plan(
    name: str,
    account: AdminAccount,
    session: SessionDep,
    requests_per_minute: OptionalCount = None,
    chat_requests_per_month: OptionalCount = None,
    characters_api: Annotated[CharactersApi | None, Form()] = None,
    webhooks: Annotated[bool, Form()] = False,  # a checkbox: absent when unticked
) -> Response:
    """As `personae plans set`: every account on the plan follows at once."""
    await AccountService(session).update_plan(
        name, requests_per_minute, chat_requests_per_month, characters_api, webhooks
    )
    return redirect(f"{ADMIN}/plans")


# Models


@router.get("/models")
async def models(request: Request, account: AdminAccount, session: SessionDep) -> Response:
    return await _models_page(request, session)


async def _models_page(
    request: Request,
    session: SessionDep,
    form: dict[str, str] | None = None,
    error: PersonaeError | None = None,
) -> Response:
    context = {
        "models": await ModelService(session).list_all(),
        "llm_engines": list(LLM_ENGINES.specs),
        "image_engines": list(IMAGE_ENGINES.specs),
        "form": form or {"type": "llm"},
        "error": error,
    }
    return render(request, "admin/models.html", context, status=error.status if error else 200)


def _settings(text: str) -> dict[str, Any]:
    """The engine settings typed in the form: a JSON object (empty: none). The engine's
    own config model checks what is in it (ModelService.register)."""
    if not text.strip():
        return {}
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"settings: not JSON: {exc}", details={"field": "settings"}) from exc
    if not isinstance(loaded, dict):
        raise InvalidRequest("settings: must be a JSON object", details={"field": "settings"})
    return loaded


@router.post("/models")
async def add_model(
    request: Request,
    account: AdminAccount,
    session: SessionDep,
    type: Annotated[ModelType, Form()],
    name: Annotated[str, Form(max_length=200)],
    engine: Annotated[str, Form(max_length=64)],
    settings: Annotated[str, Form(max_length=20_000)] = "",
    cost: Annotated[str, Form(max_length=32)] = "",
    max_context: OptionalCount = None,
) -> Response:
    """As `personae models add`: the settings are checked by the engine's config model
    before the row is written. A refusal shows the form again, as it was typed (nothing
    was written: every check comes before the row)."""
    form = {"type": type.value, "name": name, "engine": engine, "settings": settings,
            "cost": cost, "max_context": "" if max_context is None else str(max_context)}  # fmt: skip
    try:
        price = str(parse_amount(cost.strip() or "0"))
        await ModelService(session).register(
            type, name.strip(), engine.strip(), _settings(settings), max_context, price
        )
    except PersonaeError as exc:
        return await _models_page(request, session, form, exc)
    return redirect(f"{ADMIN}/models")


@router.post("/models/{model_id}/enable")
async def enable_model(model_id: str, account: AdminAccount, session: SessionDep) -> Response:
    await ModelService(session).set_enabled(model_id, True)
    return redirect(f"{ADMIN}/models")


@router.post("/models/{model_id}/disable")
async def disable_model(model_id: str, account: AdminAccount, session: SessionDep) -> Response:
    """Hidden from the API at once; its conversations keep their history."""
    await ModelService(session).set_enabled(model_id, False)
    return redirect(f"{ADMIN}/models")
