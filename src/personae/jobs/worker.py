"""`personae worker`: a process that runs jobs from a real broker (Redis or RabbitMQ)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from taskiq.api import run_receiver_task

from personae.config import Settings
from personae.db import migrate
from personae.state import AppState

log = logging.getLogger("personae")


async def run_worker(settings: Settings) -> None:
    """Consume image jobs until SIGINT or SIGTERM; a job running then is handed back."""
    state = AppState.build(settings)
    if state.queue.in_process:
        await state.close()
        raise SystemExit(
            "personae worker needs a broker: set PERSONAE_QUEUE_URL to redis://… or amqp://…"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        await migrate.upgrade(settings)
        state.queue.handle_images(state.image_jobs.run)
        await state.queue.start(consume=True)
        await state.image_jobs.sweep()
        tasks.append(
            asyncio.create_task(state.image_jobs.sweep_forever(settings.job_lease_seconds / 2))
        )
        tasks.append(
            asyncio.create_task(
                run_receiver_task(
                    state.queue.broker,
                    max_async_tasks=settings.worker_concurrency,
                    max_prefetch=0,
                )
            )
        )
        log.info("worker ready: %s, %d at a time", settings.queue_url, settings.worker_concurrency)
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.close()
