"""The console's webhooks pages: register, rotate, test, enable or disable, delete, and the
delivery log.

Each action is the characters API's `/v1/webhooks` one: the same plan check (Premium and
Enterprise), the same schema for what the form sends, the same `WebhookService` call. A
secret is shown on the response to the action that made it, never again.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, Form, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from personae.api.deps import SessionDep, SettingsDep
from personae.api.errors import invalid_request
from personae.api.types import PageNumber
from personae.console.web import ActingAccount, ConsoleAccount, check_csrf, redirect, render
from personae.dialects.characters.schemas import WebhookCreate, WebhookUpdate
from personae.dialects.characters.webhooks import require_webhooks
from personae.errors import PersonaeError
from personae.models import Account, Webhook
from personae.pagination import PageRequest
from personae.webhook.events import EVENT_TYPES
from personae.webhook.service import WebhookChanges, WebhookService

router = APIRouter(dependencies=[Depends(check_csrf)])
LIST_SIZE = 100
LOG_SIZE = 50
UNFINISHED = ("pending", "delivering")
M = TypeVar("M", bound=BaseModel)


async def webhook_service(session: SessionDep, settings: SettingsDep) -> WebhookService:
    return WebhookService(session, settings)


Service = Annotated[WebhookService, Depends(webhook_service)]


async def viewer(account: ConsoleAccount) -> Account:
    """A signed-in account whose plan includes webhooks (403 otherwise, as in the API)."""
    return await require_webhooks(account)


async def actor(account: ActingAccount) -> Account:
    return await require_webhooks(account)


Viewer = Annotated[Account, Depends(viewer)]
Actor = Annotated[Account, Depends(actor)]


def checked(schema: type[M], values: dict[str, Any]) -> M:
    """The form's values through the API's own schema; its complaints as a 400."""
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None


async def list_page(
    request: Request,
    service: WebhookService,
    account: Account,
    *,
    form: dict[str, Any] | None = None,
    error: PersonaeError | None = None,
    created: Webhook | None = None,
    status: int = 200,
) -> Response:
    result = await service.list(account, PageRequest(1, LIST_SIZE))
    context = {
        "webhooks": result.items,
        "total": result.total,
        "event_types": EVENT_TYPES,
        "form": form or {"events": []},
        "error": error,
        "created": created,
    }
    return render(request, "webhooks.html", context, status=error.status if error else status)


async def detail_page(
    request: Request,
    service: WebhookService,
    account: Account,
    webhook: Webhook,
    *,
    page: int = 1,
    secret: str | None = None,
) -> Response:
    log = await service.deliveries(account, webhook.id, PageRequest(page, LOG_SIZE))
    deliveries = list(log.items)
    context = {
        "webhook": webhook,
        "deliveries": deliveries,
        "page": page,
        "pages": log.pages,
        "secret": secret,
        # Reload while a delivery is on its way; never the answer to a POST (its secret).
        "refresh": secret is None and any(d.status in UNFINISHED for d in deliveries),
    }
    return render(request, "webhook.html", context)


@router.get("/webhooks")
async def webhooks(request: Request, account: ConsoleAccount, service: Service) -> Response:
    try:
        await require_webhooks(account)
    except PersonaeError as exc:  # the page says why, and how to get them
        return render(request, "webhooks.html", {"error": exc, "refused": True},
                      status=exc.status)  # fmt: skip
    return await list_page(request, service, account)


@router.post("/webhooks")
async def create(
    request: Request,
    account: Actor,
    service: Service,
    session: SessionDep,
    url: Annotated[str, Form(max_length=10_000)],
    events: Annotated[list[str] | None, Form()] = None,
    description: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    form = {"url": url, "events": events or [], "description": description}
    try:
        body = checked(WebhookCreate, form)
        webhook = await service.create(account, body.url, body.events, body.description)
    except PersonaeError as exc:  # a bad URL, an address it may not call, too many webhooks
        await session.rollback()
        await session.refresh(account)
        return await list_page(request, service, account, form=form, error=exc)
    await session.commit()
    return await list_page(request, service, account, created=webhook, status=201)


@router.get("/webhooks/{webhook_id}")
async def webhook(
    request: Request, webhook_id: str, account: Viewer, service: Service, page: PageNumber = 1
) -> Response:
    found = await service.get(account, webhook_id)  # 404 for another account's webhook
    return await detail_page(request, service, account, found, page=page)


@router.post("/webhooks/{webhook_id}/rotate")
async def rotate(request: Request, webhook_id: str, account: Actor, service: Service) -> Response:
    rotated = await service.rotate_secret(account, webhook_id)
    return await detail_page(request, service, account, rotated, secret=rotated.secret)


@router.post("/webhooks/{webhook_id}/test")
async def test(webhook_id: str, account: Actor, service: Service) -> Response:
    await service.ping(account, webhook_id)
    return redirect(f"/console/webhooks/{webhook_id}")


@router.post("/webhooks/{webhook_id}/status")
async def set_status(
    webhook_id: str,
    account: Actor,
    service: Service,
    status: Annotated[str, Form(max_length=20)],
) -> Response:
    body = checked(WebhookUpdate, {"status": status})
    changes = cast(WebhookChanges, body.model_dump(exclude_unset=True))
    await service.update(account, webhook_id, changes)
    return redirect(f"/console/webhooks/{webhook_id}")


@router.post("/webhooks/{webhook_id}/delete")
async def delete(webhook_id: str, account: Actor, service: Service) -> Response:
    await service.delete(account, webhook_id)
    return redirect("/console/webhooks")
