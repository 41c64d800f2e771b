"""Managing webhooks: the rules behind `/v1/webhooks`. Flushes, never commits."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.caps import WEBHOOKS, CapCheck
from personae.config import Settings
from personae.db.base import utcnow
from personae.errors import NotFound
from personae.ids import new_id
from personae.models import Account, Webhook, WebhookDelivery
from personae.pagination import Page, PageRequest
from personae.webhook.events import PING, emit
from personae.webhook.repository import WebhookRepository
from personae.webhook.ssrf import check_url


class WebhookChanges(TypedDict, total=False):
    url: str
    events: list[str]
    description: str
    status: str


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the Standard Webhooks format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.repo = WebhookRepository(session)
        self.settings = settings

    async def get(self, account: Account, webhook_id: str) -> Webhook:
        webhook = await self.repo.get(webhook_id)
        if webhook is None or webhook.account_id != account.id:
            raise NotFound(f"No webhook {webhook_id!r}", details={"id": webhook_id})
        return webhook

    async def list(self, account: Account, page: PageRequest) -> Page[Webhook]:
        rows, total = await self.repo.list_owned(account.id, page)
        return Page(rows, total, page)

    async def create(
        self, account: Account, url: str, events: Sequence[str], description: str
    ) -> Webhook:
        await check_url(url, self.settings.webhook_allow_private)  # DNS: before any lock
        await CapCheck(self.session).enforce(
            account.id,
            WEBHOOKS,
            self.settings.max_webhooks_per_account,
            lambda: self.repo.count_owned(account.id),
        )
        now = utcnow()
        webhook = Webhook(
            id=new_id("wh"),
            account_id=account.id,
            url=url,
            events=list(events),
            description=description,
            secret=new_secret(),
            status="active",
            created_at=now,
            updated_at=now,
        )
        await self.repo.add(webhook)
        return webhook

    async def update(self, account: Account, webhook_id: str, changes: WebhookChanges) -> Webhook:
        webhook = await self.get(account, webhook_id)
        if "url" in changes:
            await check_url(changes["url"], self.settings.webhook_allow_private)
        values: dict[str, Any] = dict(changes)
        if values.get("status") == "active" and webhook.status != "active":
            # Re-enabled by its owner: the failure streak starts over.
            values.update(disabled_reason=None, failing_since=None)
        elif values.get("status") == "disabled" and webhook.status != "disabled":
            values["disabled_reason"] = "Disabled by its owner"
        for field, value in values.items():
            setattr(webhook, field, value)
        webhook.updated_at = utcnow()
        await self.session.flush()
        return webhook

    async def delete(self, account: Account, webhook_id: str) -> None:
        await self.repo.delete(await self.get(account, webhook_id))

    async def rotate_secret(self, account: Account, webhook_id: str) -> Webhook:
        """A new secret; the old one also signs for `webhook_secret_overlap_seconds`, so
        receivers can switch without dropping events."""
        webhook = await self.get(account, webhook_id)
        now = utcnow()
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires_at = now + timedelta(
            seconds=self.settings.webhook_secret_overlap_seconds
        )
        webhook.secret = new_secret()
        webhook.updated_at = now
        await self.session.flush()
        return webhook

    async def ping(self, account: Account, webhook_id: str) -> WebhookDelivery:
        """Queue a `ping` event to this webhook only (even a disabled one)."""
        webhook = await self.get(account, webhook_id)
        event = await emit(
            self.session,
            account.id,
            PING,
            lambda: {"webhook_id": webhook.id, "url": webhook.url},
            webhooks=[webhook],
        )
        assert event is not None
        return await self.repo.delivery_of(event.id)

    async def deliveries(
        self, account: Account, webhook_id: str, page: PageRequest
    ) -> Page[WebhookDelivery]:
        webhook = await self.get(account, webhook_id)
        rows, total = await self.repo.deliveries(webhook.id, page)
        return Page(rows, total, page)
