"""The task queue: a taskiq broker chosen by `PERSONAE_QUEUE_URL`.

- `memory://` (the default): jobs run inside the server process; nothing to start.
- `redis://…`: a Redis stream with a consumer group; messages are acknowledged after the
  job ran, so a killed worker's message is claimed again by another worker.
- `amqp://…`: a RabbitMQ queue; messages are acknowledged after the job ran.

Messages carry only a job's id. The job's state lives in the database, and each job claims
its row before running, so a message delivered twice runs the job once (see
`personae.image.jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from taskiq import AsyncBroker, InMemoryBroker
from taskiq.kicker import AsyncKicker

from personae.config import Settings

GENERATE_IMAGE = "personae.generate_image"


def build_broker(settings: Settings) -> AsyncBroker:
    url = settings.queue_url
    if url.startswith("memory://"):
        return InMemoryBroker(max_async_tasks=settings.worker_concurrency)
    if url.startswith(("redis://", "rediss://")):
        from taskiq_redis import RedisStreamBroker

        return RedisStreamBroker(
            url,
            queue_name=settings.queue_name,
            consumer_group_name=settings.queue_name,
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
        qos=settings.worker_concurrency,
        exchange=Exchange(name=settings.queue_name),
        task_queues=[Queue(name=settings.queue_name)],
    )


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self.broker = build_broker(settings)
        self._running: set[asyncio.Task[object]] = set()

    @property
    def in_process(self) -> bool:
        """Whether jobs run in this process (memory://) rather than in `personae worker`."""
        return isinstance(self.broker, InMemoryBroker)

    def handle_images(self, run: Callable[[str], Awaitable[None]]) -> None:
        """Run image jobs here: in the server with memory://, in `personae worker` otherwise."""

        async def generate_image(image_id: str) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await run(image_id)
            except asyncio.CancelledError:
                # Stopping: the job handed its row back and a sweep sends it again, so the
                # message is done with (acknowledged) rather than logged as a failure.
                return
            finally:
                self._running.discard(task)

        self.broker.register_task(generate_image, task_name=GENERATE_IMAGE)

    async def start(self, *, consume: bool = False) -> None:
        """Connect; with `consume`, also open what a worker reads from (`personae worker`)."""
        self.broker.is_worker_process = consume
        await self.broker.startup()

    async def stop(self) -> None:
        """Cancel the jobs running here (each gives its claim back) and disconnect."""
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.shutdown()

    async def enqueue_image(self, image_id: str) -> None:
        kicker: AsyncKicker[[str], None] = AsyncKicker(GENERATE_IMAGE, self.broker, {})
        await kicker.kiq(image_id)
