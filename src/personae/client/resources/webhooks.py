"""`client.webhooks`: webhook endpoints (`/v1/webhooks`), and verifying what they receive."""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from personae.client._base import Call, clean, deleted, model, unparsed
from personae.client.errors import PersonaeError, WebhookVerificationError
from personae.client.pagination import AsyncPage, Shape, SyncPage
from personae.client.resources._base import AsyncResource, SyncResource
from personae.client.types import Deleted, Webhook, WebhookDelivery

WEBHOOKS = "/v1/webhooks"


def verify(payload: str | bytes, headers: Mapping[str, str], secret: str) -> Any:
    """Checks a webhook delivery as received, and returns its parsed JSON body.

    `payload` is the request body exactly as it arrived (before any JSON parsing),
    `headers` the request's headers (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`), `secret` the webhook's `whsec_…` secret. Raises
    `WebhookVerificationError` for a signature that does not match, a timestamp more than
    five minutes off, or missing headers. The Standard Webhooks library does the checking
    (`pip install 'personae[webhooks]'`).
    """
    try:
        from standardwebhooks.webhooks import Webhook as Verifier
        from standardwebhooks.webhooks import WebhookVerificationError as Failed
    except ImportError as exc:
        raise PersonaeError(
            "webhooks.verify needs the Standard Webhooks library: pip install 'personae[webhooks]'"
        ) from exc
    try:
        return Verifier(secret).verify(payload, dict(headers))
    except Failed as exc:
        raise WebhookVerificationError(str(exc)) from exc
    except (ValueError, binascii.Error) as exc:  # a malformed signature or secret
        raise WebhookVerificationError(f"Malformed webhook headers or secret: {exc}") from exc


def _create(
    url: str, events: Sequence[str] | None, description: str | None, key: str | None
) -> Call[Webhook]:
    body = clean({"url": url, "events": events and list(events), "description": description})
    return Call("POST", WEBHOOKS, model(Webhook), json=body, idempotency_key=key)


def _list(page: int | None, limit: int | None) -> Call[object]:
    return Call("GET", WEBHOOKS, unparsed, params=clean({"page": page, "limit": limit}))


def _get(webhook_id: str) -> Call[Webhook]:
    return Call("GET", f"{WEBHOOKS}/{webhook_id}", model(Webhook))


def _update(webhook_id: str, changes: dict[str, Any]) -> Call[Webhook]:
    return Call("PATCH", f"{WEBHOOKS}/{webhook_id}", model(Webhook), json=clean(changes))


def _delete(webhook_id: str) -> Call[Deleted]:
    return Call("DELETE", f"{WEBHOOKS}/{webhook_id}", deleted(webhook_id))


def _rotate(webhook_id: str) -> Call[Webhook]:
    return Call("POST", f"{WEBHOOKS}/{webhook_id}/rotate-secret", model(Webhook))


def _test(webhook_id: str) -> Call[WebhookDelivery]:
    return Call("POST", f"{WEBHOOKS}/{webhook_id}/test", model(WebhookDelivery))


def _deliveries(webhook_id: str, page: int | None, limit: int | None) -> Call[object]:
    params = clean({"page": page, "limit": limit})
    return Call("GET", f"{WEBHOOKS}/{webhook_id}/deliveries", unparsed, params=params)


class Webhooks(SyncResource):
    verify = staticmethod(verify)

    def create(
        self,
        *,
        url: str,
        events: Sequence[str] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        """Registers an endpoint for `events` (default: all). The answer's `secret` is
        shown this once: keep it to verify deliveries."""
        return self._client._request(_create(url, events, description, idempotency_key))

    def list(self, *, page: int | None = None, limit: int | None = None) -> SyncPage[Webhook]:
        """One's webhooks; iterate the page for all of them."""
        return self._client._page(_list(page, limit), Webhook, Shape.CHARACTERS)

    def get(self, webhook_id: str) -> Webhook:
        """One webhook."""
        return self._client._request(_get(webhook_id))

    def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> Webhook:
        """Changes a webhook's URL, events, description, or `status` (`active`,
        `disabled`)."""
        changes = {"url": url, "events": events and list(events), "description": description}
        changes["status"] = status
        return self._client._request(_update(webhook_id, changes))

    def delete(self, webhook_id: str) -> Deleted:
        """Deletes a webhook."""
        return self._client._request(_delete(webhook_id))

    def rotate_secret(self, webhook_id: str) -> Webhook:
        """A new secret for a webhook (in the answer's `secret`); the old one stops."""
        return self._client._request(_rotate(webhook_id))

    def test(self, webhook_id: str) -> WebhookDelivery:
        """Sends a test event to the webhook; returns its delivery."""
        return self._client._request(_test(webhook_id))

    def deliveries(
        self, webhook_id: str, *, page: int | None = None, limit: int | None = None
    ) -> SyncPage[WebhookDelivery]:
        """A webhook's deliveries, newest first; iterate the page for all of them."""
        call = _deliveries(webhook_id, page, limit)
        return self._client._page(call, WebhookDelivery, Shape.CHARACTERS)


class AsyncWebhooks(AsyncResource):
    verify = staticmethod(verify)

    async def create(
        self,
        *,
        url: str,
        events: Sequence[str] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        """Registers an endpoint for `events` (default: all); keep the answer's `secret`."""
        return await self._client._request(_create(url, events, description, idempotency_key))

    async def list(
        self, *, page: int | None = None, limit: int | None = None
    ) -> AsyncPage[Webhook]:
        """One's webhooks."""
        return await self._client._page(_list(page, limit), Webhook, Shape.CHARACTERS)

    async def get(self, webhook_id: str) -> Webhook:
        """One webhook."""
        return await self._client._request(_get(webhook_id))

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> Webhook:
        """Changes a webhook's URL, events, description or status."""
        changes = {"url": url, "events": events and list(events), "description": description}
        changes["status"] = status
        return await self._client._request(_update(webhook_id, changes))

    async def delete(self, webhook_id: str) -> Deleted:
        """Deletes a webhook."""
        return await self._client._request(_delete(webhook_id))

    async def rotate_secret(self, webhook_id: str) -> Webhook:
        """A new secret for a webhook; the old one stops."""
        return await self._client._request(_rotate(webhook_id))

    async def test(self, webhook_id: str) -> WebhookDelivery:
        """Sends a test event to the webhook; returns its delivery."""
        return await self._client._request(_test(webhook_id))

    async def deliveries(
        self, webhook_id: str, *, page: int | None = None, limit: int | None = None
    ) -> AsyncPage[WebhookDelivery]:
        """A webhook's deliveries, newest first."""
        call = _deliveries(webhook_id, page, limit)
        return await self._client._page(call, WebhookDelivery, Shape.CHARACTERS)
