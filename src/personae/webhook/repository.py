"""Every SQL statement about webhooks, their events and deliveries.

A delivery's life is a row's: the relay marks due ones queued, a run claims one in one
conditional UPDATE (so a delivery queued twice is sent once per attempt), and the outcome
is recorded only while the claiming attempt still holds the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.db.paging import fetch_page
from personae.models import Webhook, WebhookDelivery, WebhookEvent
from personae.pagination import PageRequest


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # webhooks
    async def add(self, webhook: Webhook) -> None:
        self.session.add(webhook)
        await self.session.flush()

    async def get(self, webhook_id: str) -> Webhook | None:
        return await self.session.get(Webhook, webhook_id)

    async def get_one(self, webhook_id: str) -> Webhook:
        return await self.session.get_one(Webhook, webhook_id)

    async def delete(self, webhook: Webhook) -> None:
        await self.session.delete(webhook)
        await self.session.flush()

    async def list_owned(self, account_id: str, page: PageRequest) -> tuple[Sequence[Webhook], int]:
        where = Webhook.account_id == account_id
        return await fetch_page(
            self.session,
            select(Webhook).where(where).order_by(Webhook.created_at.desc(), Webhook.id.desc()),
            select(func.count()).select_from(Webhook).where(where),
            page,
        )

    async def count_owned(self, account_id: str) -> int:
        stmt = select(func.count()).select_from(Webhook).where(Webhook.account_id == account_id)
        return int(await self.session.scalar(stmt) or 0)

    async def active(self, account_id: str) -> list[Webhook]:
        rows = await self.session.scalars(
            select(Webhook).where(Webhook.account_id == account_id, Webhook.status == "active")
        )
        return list(rows)

    # events
    async def add_event(self, event: WebhookEvent, deliveries: Sequence[WebhookDelivery]) -> None:
        """An event and its deliveries, the event first: the deliveries refer to it."""
        self.session.add(event)
        await self.session.flush()
        for delivery in deliveries:
            self.session.add(delivery)
        await self.session.flush()

    async def get_event(self, event_id: str) -> WebhookEvent:
        return await self.session.get_one(WebhookEvent, event_id)

    # deliveries
    async def get_delivery(self, delivery_id: str) -> WebhookDelivery:
        return await self.session.get_one(WebhookDelivery, delivery_id)

    async def delivery_of(self, event_id: str) -> WebhookDelivery:
        """The delivery of an event sent to one webhook (a ping)."""
        delivery_id = await self.session.scalar(
            select(WebhookDelivery.id).where(WebhookDelivery.event_id == event_id)
        )
        return await self.session.get_one(WebhookDelivery, delivery_id)

    async def deliveries(
        self, webhook_id: str, page: PageRequest
    ) -> tuple[Sequence[WebhookDelivery], int]:
        where = WebhookDelivery.webhook_id == webhook_id
        return await fetch_page(
            self.session,
            select(WebhookDelivery)
            .where(where)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()),
            select(func.count()).select_from(WebhookDelivery).where(where),
            page,
        )

    async def webhook_of(self, delivery_id: str) -> str | None:
        """The id of the delivery's webhook; None if the delivery is gone."""
        return await self.session.scalar(
            select(WebhookDelivery.webhook_id).where(WebhookDelivery.id == delivery_id)
        )

    # the relay
    async def due(self, now: datetime, requeue_after: timedelta) -> Sequence[Row[str, str]]:
        """Deliveries to queue (id, webhook id), at most 1,000, longest due first: pending
        ones whose time has come and that were not queued recently, and attempts whose
        lease lapsed (their process died)."""
        due = or_(
            and_(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                ~_recently_queued(now, requeue_after),
            ),
            and_(WebhookDelivery.status == "delivering", WebhookDelivery.lease_until < now),
        )
        return (
            await self.session.execute(
                select(WebhookDelivery.id, WebhookDelivery.webhook_id)
                .where(due)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(1000)
            )
        ).all()

    async def count_busy(
        self, webhook_ids: set[str], now: datetime, requeue_after: timedelta
    ) -> dict[str, int]:
        """Per webhook, its deliveries queued recently or being sent."""
        busy = or_(
            and_(WebhookDelivery.status == "delivering", WebhookDelivery.lease_until >= now),
            and_(WebhookDelivery.status == "pending", _recently_queued(now, requeue_after)),
        )
        rows = await self.session.execute(
            select(WebhookDelivery.webhook_id, func.count())
            .where(busy, WebhookDelivery.webhook_id.in_(webhook_ids))
            .group_by(WebhookDelivery.webhook_id)
        )
        return dict(rows.all())

    async def mark_queued(self, delivery_ids: Sequence[str], now: datetime) -> None:
        await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .values(enqueued_at=now)
        )

    async def unqueue(self, delivery_id: str) -> None:
        """Not queued any more: the relay queues it again next round."""
        await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(enqueued_at=None)
        )

    # an attempt
    async def claim(self, delivery_id: str, now: datetime, lease_until: datetime) -> int | None:
        """Start an attempt at a due delivery (pending and due, or with a lapsed lease):
        its number, or None if the delivery is not this run's to send."""
        attempt: int | None = await self.session.scalar(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                or_(
                    and_(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                    ),
                    and_(
                        WebhookDelivery.status == "delivering",
                        WebhookDelivery.lease_until < now,
                    ),
                ),
            )
            .values(
                status="delivering",
                attempts=WebhookDelivery.attempts + 1,
                lease_until=lease_until,
                last_attempt_at=now,
            )
            .returning(WebhookDelivery.attempts)
        )
        return attempt

    async def record(
        self, delivery_id: str, attempt: int, values: dict[str, Any]
    ) -> Row[str, str] | None:
        """Write an attempt's outcome if the attempt still holds the delivery: the
        delivery's webhook id and event type, or None (another run took it over)."""
        done = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.attempts == attempt,
                WebhookDelivery.status == "delivering",
            )
            .values(**values)
            .returning(WebhookDelivery.webhook_id, WebhookDelivery.event_type)
        )
        return done.first()


def _recently_queued(now: datetime, requeue_after: timedelta) -> ColumnElement[bool]:
    """Queued less than `requeue_after` ago: its message is presumably still in the queue."""
    return and_(
        WebhookDelivery.enqueued_at.is_not(None),
        WebhookDelivery.enqueued_at >= now - requeue_after,
    )
