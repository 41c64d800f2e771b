"""Sending webhook deliveries: the relay that queues due ones, and the job that sends one.

The outbox rows (`personae.webhook.events`) are durable once their change commits. The
relay, running in every process that runs jobs, queues deliveries that are due (new ones,
retries whose time has come, and attempts cut short by a dead process). A delivery job
claims its row in one UPDATE, so a delivery queued twice is sent once per attempt; signs
the stored body per the Standard Webhooks spec; POSTs it through a client that connects
only to public addresses and follows no redirect; and records the outcome. A failure is
retried after the next delay of `PERSONAE_WEBHOOK_RETRY_SCHEDULE` (+-20% jitter); after
the last one the delivery is `failed`. A webhook whose deliveries have failed without a
success for `PERSONAE_WEBHOOK_DISABLE_AFTER_SECONDS` is disabled, with the reason.

One slow endpoint cannot hold up others: the relay queues at most
`webhook_endpoint_concurrency` deliveries per webhook at a time (counting those queued or
being sent), so a backlog for one endpoint never fills the queue or the delivery slots;
a process also refuses to send more than that to one webhook at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook as Signer

from personae import __version__
from personae.config import Settings
from personae.db.base import utcnow
from personae.models import Webhook, WebhookEvent
from personae.observability import metrics
from personae.observability.logs import carrying_request_id
from personae.webhook.repository import WebhookRepository
from personae.webhook.ssrf import BlockedAddress, guarded_client

log = logging.getLogger("personae")

JITTER = 0.2
REQUEUE_AFTER = timedelta(seconds=60)  # a queued delivery not picked up by then is queued again


def signature_header(webhook: Webhook, msg_id: str, when: datetime, body: str) -> str:
    """`v1,<base64>` per secret; during a rotation's overlap the previous secret signs
    too, space-separated, as the spec allows."""
    secrets = [webhook.secret]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret and expires and expires > when:
        secrets.append(webhook.previous_secret)
    return " ".join(Signer(s).sign(msg_id, when, body) for s in secrets)


class WebhookDeliveries:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        enqueue: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.enqueue = enqueue
        self.delays = settings.retry_delays
        self.lease = timedelta(seconds=settings.webhook_timeout_seconds + 30)
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._in_flight: Counter[str] = Counter()
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = guarded_client(
                self.settings.webhook_allow_private, self.settings.webhook_timeout_seconds
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # the relay
    async def relay(self) -> int:
        """Queue the deliveries that are due, at most `webhook_endpoint_concurrency` per
        webhook counting those already queued or being sent; returns how many."""
        now = utcnow()
        cap = self.settings.webhook_endpoint_concurrency
        async with self.sessionmaker.begin() as session:
            repo = WebhookRepository(session)
            candidates = await repo.due(now, REQUEUE_AFTER)
            metrics.QUEUE_DEPTH.labels("webhook").set(len(candidates))
            if not candidates:
                return 0
            hooks = {c.webhook_id for c in candidates}
            in_flight = Counter(await repo.count_busy(hooks, now, REQUEUE_AFTER))
            ids = []
            for c in candidates:
                if in_flight[c.webhook_id] < cap:
                    in_flight[c.webhook_id] += 1
                    ids.append(c.id)
            if ids:
                await repo.mark_queued(ids, now)
        for delivery_id in ids:
            await self.enqueue(delivery_id)
        return len(ids)

    async def relay_forever(self) -> None:
        while True:
            try:
                await self.relay()
            except Exception:  # a database hiccup must not stop deliveries for good
                log.exception("could not relay webhook deliveries")
            await asyncio.sleep(self.settings.webhook_relay_seconds)

    # one delivery
    async def run(self, delivery_id: str) -> None:
        async with self.sessionmaker() as session:
            webhook_id = await WebhookRepository(session).webhook_of(delivery_id)
        if webhook_id is None:
            return  # its webhook was deleted
        if self._in_flight[webhook_id] >= self.settings.webhook_endpoint_concurrency:
            await self._unqueue(delivery_id)  # the relay sends it again next round
            return
        self._in_flight[webhook_id] += 1
        try:
            async with self._slots:
                await self._attempt(delivery_id)
        finally:
            self._in_flight[webhook_id] -= 1
            if not self._in_flight[webhook_id]:
                del self._in_flight[webhook_id]

    async def _unqueue(self, delivery_id: str) -> None:
        async with self.sessionmaker.begin() as session:
            await WebhookRepository(session).unqueue(delivery_id)

    async def _claim(self, delivery_id: str, now: datetime) -> int | None:
        async with self.sessionmaker.begin() as session:
            return await WebhookRepository(session).claim(delivery_id, now, now + self.lease)

    async def _attempt(self, delivery_id: str) -> None:
        now = utcnow()
        attempt = await self._claim(delivery_id, now)
        if attempt is None:
            return  # sent already, being sent, or not due: a duplicate message
        async with self.sessionmaker() as session:
            repo = WebhookRepository(session)
            delivery = await repo.get_delivery(delivery_id)
            webhook = await repo.get_one(delivery.webhook_id)
            event = await repo.get_event(delivery.event_id)
        with carrying_request_id(event.request_id):  # the request that caused the event
            await self._deliver(delivery_id, attempt, webhook, event, now)

    async def _deliver(
        self, delivery_id: str, attempt: int, webhook: Webhook, event: WebhookEvent, now: datetime
    ) -> None:
        if webhook.status != "active" and event.type != "ping":
            await self._record(delivery_id, attempt, None, "the webhook is disabled", final=True)
            return
        code, error = await self._send(webhook, event, now)
        if code is not None and 200 <= code < 300:
            await self._record(delivery_id, attempt, code, None, final=True)
        else:
            final = attempt > len(self.delays)
            await self._record(delivery_id, attempt, code, error, final=final)

    async def _send(
        self, webhook: Webhook, event: WebhookEvent, now: datetime
    ) -> tuple[int | None, str | None]:
        headers = {
            "content-type": "application/json",
            "user-agent": f"Personae-Webhooks/{__version__}",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(webhook, event.id, now, event.payload),
        }
        if event.request_id:  # the request that caused the event, for the receiver's logs
            headers["x-request-id"] = event.request_id
        try:
            async with self.client.stream(
                "POST", webhook.url, content=event.payload.encode(), headers=headers
            ) as response:
                await self._drain(response)
        except BlockedAddress as exc:
            return None, f"refused: {exc}"
        except httpx.TimeoutException:
            return None, f"timed out after {self.settings.webhook_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return None, f"connection failed: {exc!r}"[:500]
        if 300 <= response.status_code < 400:
            return response.status_code, "redirects are not followed"
        if response.status_code >= 300:
            return response.status_code, f"answered {response.status_code}"
        return response.status_code, None

    async def _drain(self, response: httpx.Response) -> None:
        """Read at most `webhook_max_response_bytes` of the answer; the rest is dropped."""
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= self.settings.webhook_max_response_bytes:
                break

    async def _record(
        self, delivery_id: str, attempt: int, code: int | None, error: str | None, *, final: bool
    ) -> None:
        now = utcnow()
        succeeded = error is None
        values: dict[str, object] = {
            "last_status_code": code,
            "last_error": error,
            "lease_until": None,
            "enqueued_at": None,
        }
        if succeeded:
            values.update(status="succeeded", delivered_at=now)
        elif final:
            values.update(status="failed")
        else:
            delay = self.delays[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
        async with self.sessionmaker.begin() as session:
            repo = WebhookRepository(session)
            row = await repo.record(delivery_id, attempt, values)
            if row is not None:
                outcome = "succeeded" if succeeded else "failed" if final else "retrying"
                metrics.JOBS.labels("webhook", outcome).inc()
            if row is None or row.event_type == "ping":
                return  # a lapsed attempt taken over by another; pings judge nothing
            webhook = await repo.get_one(row.webhook_id)
            if succeeded:
                webhook.failing_since = None
            else:
                webhook.failing_since = webhook.failing_since or now
                self._maybe_disable(webhook, now, code, error)

    def _maybe_disable(
        self, webhook: Webhook, now: datetime, code: int | None, error: str | None
    ) -> None:
        since = webhook.failing_since
        limit = timedelta(seconds=self.settings.webhook_disable_after_seconds)
        if webhook.status != "active" or since is None or now - since < limit:
            return
        webhook.status = "disabled"
        webhook.updated_at = now
        last = f"HTTP {code}" if code is not None else error
        webhook.disabled_reason = (
            f"Disabled automatically: every delivery since {since.isoformat(timespec='seconds')} "
            f"failed (last: {last})"
        )
        log.warning("webhook %s disabled: failing since %s", webhook.id, since)
