"""Webhooks of the characters API (`/v1/webhooks`), for Premium and Enterprise plans."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Query, status

from personae.api.deps import CurrentAccount, SessionDep, SettingsDep
from personae.api.types import PageNumber
from personae.dialects.characters.schemas import (
    DeliveryOut,
    DeliveryPage,
    Pagination,
    WebhookCreate,
    WebhookDeleted,
    WebhookOut,
    WebhookPage,
    WebhookUpdate,
    WebhookWithSecret,
)
from personae.errors import PremiumRequired
from personae.models import Account, Webhook, WebhookDelivery
from personae.pagination import PageRequest
from personae.webhook.service import WebhookChanges, WebhookService


async def require_webhooks(account: CurrentAccount) -> Account:
    if not account.plan.webhooks:
        raise PremiumRequired(
            f"Webhooks are not included in the {account.plan_name!r} plan",
            details={"plan": account.plan_name},
        )
    return account


async def get_webhook_service(session: SessionDep, settings: SettingsDep) -> WebhookService:
    return WebhookService(session, settings)


Service = Annotated[WebhookService, Depends(get_webhook_service)]
Owner = Annotated[Account, Depends(require_webhooks)]
router = APIRouter(dependencies=[Depends(require_webhooks)])


def webhook_out(w: Webhook) -> WebhookOut:
    return WebhookOut.model_validate(w, from_attributes=True)


def with_secret(w: Webhook) -> WebhookWithSecret:
    return WebhookWithSecret.model_validate(w, from_attributes=True)


def delivery_out(d: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        event=d.event_type,
        status=d.status,
        attempts=d.attempts,
        last_response_code=d.last_status_code,
        last_error=d.last_error,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_attempt_at=d.last_attempt_at,
        delivered_at=d.delivered_at,
        created_at=d.created_at,
    )


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook; the answer is the only one that shows its secret",
)
async def create_webhook(
    body: WebhookCreate, account: Owner, service: Service
) -> WebhookWithSecret:
    return with_secret(await service.create(account, body.url, body.events, body.description))


@router.get("/webhooks", summary="The account's webhooks, newest first")
async def list_webhooks(
    account: Owner,
    service: Service,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> WebhookPage:
    result = await service.list(account, PageRequest(page, limit))
    return WebhookPage(
        data=[webhook_out(w) for w in result.items], pagination=Pagination.of(result)
    )


@router.get("/webhooks/{webhook_id}", summary="One webhook, with why it is disabled if it is")
async def get_webhook(webhook_id: str, account: Owner, service: Service) -> WebhookOut:
    return webhook_out(await service.get(account, webhook_id))


@router.patch("/webhooks/{webhook_id}", summary="Change url, events, description or status")
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, account: Owner, service: Service
) -> WebhookOut:
    changes = cast(WebhookChanges, body.model_dump(exclude_unset=True))
    return webhook_out(await service.update(account, webhook_id, changes))


@router.delete("/webhooks/{webhook_id}", summary="Delete a webhook and its delivery log")
async def delete_webhook(webhook_id: str, account: Owner, service: Service) -> WebhookDeleted:
    await service.delete(account, webhook_id)
    return WebhookDeleted(webhook_id=webhook_id)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    summary="A new secret; the old one keeps signing for PERSONAE_WEBHOOK_SECRET_OVERLAP_SECONDS",
)
async def rotate_secret(webhook_id: str, account: Owner, service: Service) -> WebhookWithSecret:
    return with_secret(await service.rotate_secret(account, webhook_id))


@router.post(
    "/webhooks/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a `ping` event; follow it in the delivery log",
)
async def test_webhook(webhook_id: str, account: Owner, service: Service) -> DeliveryOut:
    return delivery_out(await service.ping(account, webhook_id))


@router.get("/webhooks/{webhook_id}/deliveries", summary="The delivery log, newest first")
async def list_deliveries(
    webhook_id: str,
    account: Owner,
    service: Service,
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeliveryPage:
    result = await service.deliveries(account, webhook_id, PageRequest(page, limit))
    return DeliveryPage(
        data=[delivery_out(d) for d in result.items], pagination=Pagination.of(result)
    )
