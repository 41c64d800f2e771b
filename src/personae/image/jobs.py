"""Running image jobs, wherever the queue delivers them (the server with memory://, or
`personae worker`), and recovering the ones a dead worker left behind.

The `images` row is the job. A run first *claims* it (pending, or running with a lapsed
lease, and attempts left) in one UPDATE, so a message delivered twice runs the job once.
While it runs, the worker renews the lease; `sweep()` sends a job whose lease lapsed (its
worker died) or that waited too long in the queue (its message was lost) to the queue
again, and fails it for good after `job_max_attempts` runs. A failed job gives its price
back to the balance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.account.billing import Billing, Hold
from personae.character.service import CharacterService
from personae.config import Settings
from personae.conversation.service import ConversationService
from personae.db.base import utcnow
from personae.db.hooks import after_commit
from personae.engines.image.base import ImageParams
from personae.engines.image.registry import ImageEngines
from personae.errors import EngineFailed, PersonaeError
from personae.image.repository import ImageRepository
from personae.models import Model
from personae.models.image import ImageStatus
from personae.observability import metrics
from personae.observability.logs import carrying_request_id
from personae.storage.files import Storage, new_key
from personae.storage.processing import sanitize_image
from personae.webhook import payloads
from personae.webhook.events import emit

log = logging.getLogger("personae")

# What a generated file may weigh once re-encoded; far above a 2048² PNG.
MAX_GENERATED_BYTES = 64 * 1024 * 1024


class JobEvents:
    """Wakes requests waiting in this process for a job that finished in this process.
    Requests waiting on a job run elsewhere fall back to polling the row."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, image_id: str) -> asyncio.Event:
        return self._events.setdefault(image_id, asyncio.Event())

    def forget(self, image_id: str) -> None:
        self._events.pop(image_id, None)

    def finished(self, image_id: str) -> None:
        if event := self._events.get(image_id):
            event.set()


class ImageJobs:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        storage: Storage,
        engines: ImageEngines,
        enqueue: Callable[[str], Awaitable[None]],
        events: JobEvents,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.storage = storage
        self.engines = engines
        self.enqueue = enqueue
        self.events = events
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        # Jobs run at once in this process. The job claims its row only once it has a slot,
        # so a job waiting here stays pending (and its lease does not tick).
        self._slots = asyncio.Semaphore(settings.worker_concurrency)

    # running
    async def run(self, image_id: str) -> None:
        async with self._slots:
            await self._run(image_id)

    async def _run(self, image_id: str) -> None:
        claimed = await self._claim(image_id)
        if claimed is None:
            return  # finished, running elsewhere, or unknown: a duplicate message
        attempt, request_id = claimed
        with carrying_request_id(request_id):  # the request that asked for the job
            await self._work(image_id, attempt)

    async def _work(self, image_id: str, attempt: int) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(image_id, attempt))
        try:
            key = await self._generate(image_id)
            await self._complete(image_id, attempt, key)
            metrics.JOBS.labels("image", "completed").inc()
        except asyncio.CancelledError:
            await self._release(image_id, attempt)  # a stopping process hands the job back
            metrics.JOBS.labels("image", "released").inc()
            raise
        except PersonaeError as exc:
            await self._fail(image_id, attempt, exc.message)
            metrics.JOBS.labels("image", "failed").inc()
        except Exception:
            log.exception("image job %s failed", image_id)
            await self._fail(image_id, attempt, "Internal error while generating the image")
            metrics.JOBS.labels("image", "failed").inc()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self.events.finished(image_id)

    async def _claim(self, image_id: str) -> tuple[int, str | None] | None:
        """The attempt this run is, and the job's request id; None if it is not this
        run's to do."""
        now = utcnow()
        async with self.sessionmaker.begin() as session:
            row = await ImageRepository(session).claim(
                image_id, self.settings.job_max_attempts, now, now + self.lease
            )
        return None if row is None else (row.attempts, row.request_id)

    async def _release(self, image_id: str, attempt: int) -> None:
        # Back-dated, so that the next sweep of any live worker sends it again.
        enqueued_at = utcnow() - timedelta(seconds=self.settings.job_requeue_seconds)
        async with self.sessionmaker.begin() as session:
            await ImageRepository(session).release(image_id, attempt, enqueued_at)

    async def _heartbeat(self, image_id: str, attempt: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            async with self.sessionmaker.begin() as session:
                await ImageRepository(session).renew_lease(image_id, attempt, utcnow() + self.lease)

    async def _generate(self, image_id: str) -> str:
        async with self.sessionmaker() as session:
            image = await ImageRepository(session).get_one(image_id)
            model = await session.get(Model, image.model_id)
            params = ImageParams(
                prompt=image.prompt,
                negative_prompt=image.negative_prompt,
                width=image.width,
                height=image.height,
                steps=image.steps,
                guidance=image.guidance,
                seed=image.seed,
            )
            folder = "avatars" if image.purpose == "avatar" else "images"
        if model is None:
            raise EngineFailed("The image model was removed before the job ran")
        engine = await self.engines.get(model)
        data = await engine.generate(params)
        # An engine's output is untrusted like an upload: checked, capped and re-encoded.
        clean = await asyncio.to_thread(sanitize_image, data, MAX_GENERATED_BYTES, "generated")
        key = new_key(folder, image_id, clean.ext)
        await self.storage.save(key, clean.data)
        return key

    async def _complete(self, image_id: str, attempt: int, key: str) -> None:
        now = utcnow()
        async with self.sessionmaker.begin() as session:
            images = ImageRepository(session)
            if not await images.complete(image_id, attempt, key, now):
                # Our lease lapsed and another run took over.
                after_commit(session, lambda: self.storage.delete(key))
                return
            image = await images.get_one(image_id)
            # Its price was taken when it was ordered; the ledger counts it once it is made.
            await Billing(session).record_image(
                image.account_id, image.model_id, image.cost_micros, now
            )
            characters = CharacterService(session, self.storage)
            if image.conversation_id is not None:
                conversations = ConversationService(session, characters)
                message = await conversations.post_image(
                    image.account_id, image.conversation_id, key, now
                )
                if message is not None:
                    image.message_id = message.id
            if image.purpose == "avatar" and image.character_id is not None:
                await characters.set_avatar(image.character_id, key, now)
            await emit(session, image.account_id, "image.created",
                       payloads.image(self.storage, image))  # fmt: skip

    async def _fail(self, image_id: str, attempt: int | None, reason: str) -> None:
        """Mark the job failed and give its price back, once (the status guard)."""
        async with self.sessionmaker.begin() as session:
            row = await ImageRepository(session).fail(image_id, attempt, reason, utcnow())
            if row is not None:  # the claim above: refunded once, whoever fails it
                await Billing(session).release(Hold.balance_only(row.account_id, row.cost_micros))
        self.events.finished(image_id)

    # recovering
    async def sweep(self, *, everything: bool = False) -> int:
        """Send abandoned jobs to the queue again; fail those out of attempts. With
        `everything`, every unfinished job is sent (the in-process queue after a restart:
        nothing of it survived). Returns how many were sent."""
        now = utcnow()
        stale_pending = now - timedelta(seconds=self.settings.job_requeue_seconds)
        async with self.sessionmaker.begin() as session:
            images = ImageRepository(session)
            rows = await images.abandoned(now, None if everything else stale_pending)
            metrics.QUEUE_DEPTH.labels("image").set(await images.count_pending())
            to_send = [
                r.id
                for r in rows
                if r.status == ImageStatus.PENDING or r.attempts < self.settings.job_max_attempts
            ]
            if to_send:
                await images.mark_enqueued(to_send, now)
        for row in rows:
            if row.id not in to_send:
                await self._fail(
                    row.id,
                    row.attempts,
                    f"The worker stopped during each of {row.attempts} attempts",
                )
        for image_id in to_send:
            await self.enqueue(image_id)
        if to_send:
            log.info("sent %d abandoned image jobs to the queue again", len(to_send))
        return len(to_send)

    async def sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not end recovery for good
                log.exception("could not sweep image jobs")
