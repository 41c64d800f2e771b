"""`personae worker`: a process that runs jobs from a real broker (Redis or RabbitMQ):
image generation and webhook deliveries, each from its own queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from taskiq.api import run_receiver_task

from personae.app import start_queue
from personae.config import Settings
from personae.db import migrate
from personae.redact import install_log_redaction
from personae.state import AppState

log = logging.getLogger("personae")


async def run_worker(settings: Settings) -> None:
    """Consume jobs until SIGINT or SIGTERM; an image job running then is handed back."""
    install_log_redaction()
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
        async with migrate.startup_lock(settings):
            await migrate.upgrade(settings)
        tasks += await start_queue(state, consume=True)
        for broker, concurrency in (
            (state.queue.images, settings.worker_concurrency),
            (state.queue.webhooks, settings.webhook_concurrency),
        ):
            receiver = run_receiver_task(broker, max_async_tasks=concurrency, max_prefetch=0)
            tasks.append(asyncio.create_task(receiver))
        log.info("worker ready: %s, %d at a time", settings.queue_url, settings.worker_concurrency)
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.close()
