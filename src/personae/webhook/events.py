"""Recording events in the outbox, inside the transaction of the change that caused them.

`emit()` writes the event and one delivery per active webhook of the account that wants
it, with the same session as the change: if the change rolls back, so do they, and once it
commits they are durable; the relay (`personae.webhook.delivery`) sends them. Nothing is
rendered or written for an account without a webhook that wants the event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from personae.db.base import utcnow
from personae.ids import new_id
from personae.models import Webhook, WebhookDelivery, WebhookEvent
from personae.observability.logs import REQUEST_ID
from personae.timestamps import format_timestamp
from personae.webhook.repository import WebhookRepository

EVENT_TYPES = (
    "message.created",
    "message.updated",  # edited, or another version selected
    "message.deleted",
    "conversation.created",
    "conversation.updated",
    "conversation.deleted",
    "character.created",
    "character.updated",
    "image.created",
)
PING = "ping"  # sent by POST /v1/webhooks/{id}/test, to that webhook only

Render = Callable[[], dict[str, Any]]
_ACTIVE = "personae.active_webhooks"  # session.info: (transaction, {account id: webhooks})


def envelope(event_id: str, event_type: str, created_at: datetime, data: dict[str, Any]) -> str:
    """The body every delivery of the event sends: `{id, type, created_at, data}`."""
    body = {
        "id": event_id,
        "type": event_type,
        "created_at": format_timestamp(created_at),
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), default=str)


async def emit(
    session: AsyncSession,
    account_id: str,
    event_type: str,
    render: Render,
    *,
    webhooks: list[Webhook] | None = None,
) -> WebhookEvent | None:
    """Record `event_type` for the account's webhooks that want it (or for `webhooks`)."""
    if webhooks is None:
        webhooks = [w for w in await _active(session, account_id) if event_type in w.events]
    if not webhooks:
        return None
    now = utcnow()
    event_id = new_id("evt")
    event = WebhookEvent(
        id=event_id,
        account_id=account_id,
        type=event_type,
        payload=envelope(event_id, event_type, now, render()),
        created_at=now,
        request_id=REQUEST_ID.get(),
    )
    deliveries = [
        WebhookDelivery(
            id=new_id("dlv"),
            webhook_id=webhook.id,
            event_id=event_id,
            event_type=event_type,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for webhook in webhooks
    ]
    await WebhookRepository(session).add_event(event, deliveries)
    return event


async def _active(session: AsyncSession, account_id: str) -> list[Webhook]:
    """The account's active webhooks, read once per transaction: a chat turn emits several
    events in each of its transactions, and each would otherwise ask again."""
    transaction = session.sync_session.get_transaction()
    memo: tuple[object, dict[str, list[Webhook]]] | None = session.info.get(_ACTIVE)
    if memo is None or memo[0] is not transaction:
        memo = (transaction, {})
        session.info[_ACTIVE] = memo
    known = memo[1]
    if account_id not in known:
        known[account_id] = await WebhookRepository(session).active(account_id)
    return known[account_id]
