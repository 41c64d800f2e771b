"""The task queue: taskiq brokers chosen by `PERSONAE_QUEUE_URL`, one per kind of job
(image generation, webhook deliveries), so that a backlog of one never waits behind the
other and each has its own concurrency.

- `memory://` (the default): jobs run inside the server process; nothing to start.
- `redis://…`: Redis streams with consumer groups (`QUEUE_NAME` and `QUEUE_NAME.webhooks`);
  messages are acknowledged after the job ran, so a killed worker's message is claimed
  again by another worker.
- `amqp://…`: RabbitMQ quorum queues of the same names; acknowledged after the job ran.

Messages carry only a row's id. The job's state lives in the database, and each job claims
its row before running, so a message delivered twice runs the job once (see
`personae.image.jobs` and `personae.webhook.delivery`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

from personae.config import Settings

GENERATE_IMAGE = "personae.generate_image"
DELIVER_WEBHOOK = "personae.deliver_webhook"
STOP_GRACE = 2.0


def build_broker(settings: Settings, queue_name: str, concurrency: int) -> AsyncBroker:
    url = settings.queue_url
    if url.startswith("memory://"):
        return InMemoryBroker(max_async_tasks=concurrency)
    if url.startswith(("redis://", "rediss://")):
        from taskiq_redis import RedisStreamBroker

        return RedisStreamBroker(
            url,
            queue_name=queue_name,
            consumer_group_name=queue_name,
            consumer_id="0",  # a group made after messages were sent still gets them
            xread_count=1,  # take one job at a time: a killed worker strands no others
            idle_timeout=int(settings.job_lease_seconds * 1000),
            maxlen=1_000_000,  # acknowledged entries are trimmed past this
        )
    from taskiq_aio_pika import AioPikaBroker
    from taskiq_aio_pika.exchange import Exchange
    from taskiq_aio_pika.queue import Queue

    return AioPikaBroker(
        url,
        qos=concurrency,
        exchange=Exchange(name=settings.queue_name),
        task_queues=[Queue(name=queue_name)],
    )


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self.images = build_broker(settings, settings.queue_name, settings.worker_concurrency)
        self.webhooks = build_broker(
            settings, f"{settings.queue_name}.webhooks", settings.webhook_concurrency
        )
        # A delivery is let finish on stop (it is short, and one cut off mid-write is sent
        # again); an image job is cancelled at once and hands its row back.
        self.delivery_grace = settings.webhook_timeout_seconds + STOP_GRACE
        self._running: dict[str, set[asyncio.Task[object]]] = {
            GENERATE_IMAGE: set(),
            DELIVER_WEBHOOK: set(),
        }

    @property
    def brokers(self) -> tuple[AsyncBroker, AsyncBroker]:
        return self.images, self.webhooks

    @property
    def in_process(self) -> bool:
        """Whether jobs run in this process (memory://) rather than in `personae worker`."""
        return isinstance(self.images, InMemoryBroker)

    def handle(
        self,
        images: Callable[[str], Awaitable[None]],
        webhooks: Callable[[str], Awaitable[None]],
    ) -> None:
        """Run jobs here: in the server with memory://, in `personae worker` otherwise."""
        self._register(self.images, GENERATE_IMAGE, images)
        self._register(self.webhooks, DELIVER_WEBHOOK, webhooks)

    def _register(
        self, broker: AsyncBroker, name: str, run: Callable[[str], Awaitable[None]]
    ) -> None:
        async def job(row_id: str) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running[name].add(task)
            try:
                await run(row_id)
            except asyncio.CancelledError:
                # Stopping: the job handed its row back and a sweep sends it again, so the
                # message is done with (acknowledged) rather than logged as a failure.
                return
            finally:
                self._running[name].discard(task)

        broker.register_task(job, task_name=name)

    async def reachable(self) -> bool | None:
        """Whether every broker's connection is up (None: the in-process queue, which has
        none). Redis streams answer a PING; RabbitMQ's connection is open or reconnecting."""
        if self.in_process:
            return None
        return all([await _broker_reachable(broker) for broker in self.brokers])

    async def start(self, *, consume: bool = False) -> None:
        """Connect; with `consume`, also open what a worker reads from (`personae worker`)."""
        for broker in self.brokers:
            broker.is_worker_process = consume
            await broker.startup()

    async def stop(self) -> None:
        """Cancel the image jobs running here (each hands its row back), let deliveries in
        flight finish (up to their timeout), then disconnect. A job that has not wound
        down by then is left to its lease."""
        images = list(self._running[GENERATE_IMAGE])
        for task in images:
            task.cancel()
        deliveries = list(self._running[DELIVER_WEBHOOK])
        if deliveries:
            _, late = await asyncio.wait(deliveries, timeout=self.delivery_grace)
            for task in late:
                task.cancel()
            images += late
        if images:
            await asyncio.wait(images, timeout=STOP_GRACE)
        for broker in self.brokers:
            await broker.shutdown()

    async def enqueue_image(self, image_id: str) -> None:
        await _kick(self.images, GENERATE_IMAGE, image_id)

    async def enqueue_delivery(self, delivery_id: str) -> None:
        await _kick(self.webhooks, DELIVER_WEBHOOK, delivery_id)


async def _kick(broker: AsyncBroker, name: str, row_id: str) -> None:
    kicker: AsyncKicker[[str], None] = AsyncKicker(name, broker, {})
    await kicker.kiq(row_id)


async def _broker_reachable(broker: AsyncBroker) -> bool:
    pool = getattr(broker, "connection_pool", None)  # taskiq-redis
    if pool is not None:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        try:
            async with Redis(connection_pool=pool) as redis:
                return bool(await redis.ping())
        except (RedisError, OSError):
            return False
    connection = getattr(broker, "write_conn", None)  # taskiq-aio-pika, once started
    return connection is not None and not connection.is_closed and connection.connected.is_set()
