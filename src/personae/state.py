"""What a running process holds: settings, the database, the rate limiter, file storage,
loaded engines, the task queue, image jobs and webhook deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from personae.account.auth import Authenticator
from personae.account.changes import ANNOUNCER
from personae.character.activity import ChatActivity
from personae.config import Settings
from personae.conversation.prompt import PromptTemplate
from personae.conversation.turns import TurnLedger
from personae.db.session import Writer, create_engine, create_sessionmaker, is_sqlite
from personae.engines.image.registry import ImageEngines
from personae.engines.llm.registry import LLMEngines
from personae.idempotency.service import IdempotencyKeys
from personae.image.jobs import ImageJobs, JobEvents
from personae.jobs.queue import JobQueue
from personae.ratelimit import RateLimiter
from personae.storage.files import LocalStorage, Storage
from personae.storage.signing import UrlSigner, signing_secrets
from personae.webhook.delivery import WebhookDeliveries


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    storage: Storage
    url_signer: UrlSigner  # checks the signed `/files/` URLs, whichever backend holds the files
    llm_engines: LLMEngines
    image_engines: ImageEngines
    prompt_template: PromptTemplate
    queue: JobQueue
    job_events: JobEvents
    image_jobs: ImageJobs
    webhook_deliveries: WebhookDeliveries
    turns: TurnLedger
    writer: Writer
    idempotency: IdempotencyKeys
    authenticator: Authenticator
    chat_activity: ChatActivity

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        writer = Writer(sessionmaker, serialise=is_sqlite(settings.resolved_database_url))
        signer = UrlSigner(signing_secrets(settings), settings.file_url_ttl_seconds)
        storage = build_storage(settings, signer)
        image_engines = ImageEngines()
        queue = JobQueue(settings)
        events = JobEvents()
        jobs = ImageJobs(
            settings, sessionmaker, storage, image_engines, queue.enqueue_image, events
        )
        turns = TurnLedger(sessionmaker, writer, settings.turn_heartbeat_seconds)
        authenticator = Authenticator(
            sessionmaker,
            settings.auth_cache_seconds,
            settings.data_dir / "auth-epoch",
            settings.redis_url,
        )
        sessionmaker.configure(info={ANNOUNCER: authenticator})
        return cls(
            settings,
            engine,
            sessionmaker,
            RateLimiter(settings.redis_url),
            storage,
            signer,
            LLMEngines.from_settings(settings),
            image_engines,
            PromptTemplate.from_file(settings.prompt_template_file),
            queue,
            events,
            jobs,
            WebhookDeliveries(settings, sessionmaker, queue.enqueue_delivery),
            turns,
            writer,
            IdempotencyKeys(
                sessionmaker,
                writer,
                turns.instance_id,
                settings.turn_heartbeat_seconds,
                timedelta(seconds=settings.idempotency_key_ttl_seconds),
            ),
            authenticator,
            ChatActivity(writer),
        )

    def connections_in_use(self) -> int:
        """Connections checked out of this process's database pool."""
        checkedout = getattr(self.engine.pool, "checkedout", None)
        return int(checkedout()) if checkedout else 0

    async def close(self) -> None:
        await self.authenticator.close()
        await self.chat_activity.close()
        await self.queue.stop()
        await self.llm_engines.close()
        await self.image_engines.close()
        await self.webhook_deliveries.close()
        await self.limiter.close()
        await self.storage.close()
        await self.engine.dispose()


def build_storage(settings: Settings, signer: UrlSigner) -> Storage:
    """The files backend `PERSONAE_STORAGE_BACKEND` names."""
    if settings.storage_backend == "s3":
        from personae.storage.s3 import S3Storage  # boto3 loads only where it is used

        return S3Storage.from_settings(settings)
    return LocalStorage(settings.data_dir / "files", settings.resolved_public_url, signer)
