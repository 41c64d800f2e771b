"""The application factory: lifespan (migrations, database, rate limiter), middleware,
error handlers and both dialects."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from personae import __version__
from personae.account.service import AccountService
from personae.api.errors import install_error_handlers
from personae.api.files import router as files_router
from personae.api.health import router as health_router
from personae.api.idempotency import IdempotencyMiddleware
from personae.api.metrics import router as metrics_router
from personae.api.middleware import (
    BodyLimitMiddleware,
    HeaderLimitMiddleware,
    RateLimitHeadersMiddleware,
    UnexpectedErrorMiddleware,
)
from personae.api.observe import ObserveRequests
from personae.api.openapi import install_openapi
from personae.api.security import QueryKeyMiddleware, SecurityHeadersMiddleware, add_cors
from personae.character.tasks import refresh_trending_forever
from personae.config import Settings
from personae.console.routes import install as install_console
from personae.conversation.chat import drain_releases
from personae.db import migrate
from personae.dialects.agents.routes import router as agents_router
from personae.dialects.characters.routes import router as characters_router
from personae.dialects.openai.routes import router as openai_router
from personae.errors import PersonaeError
from personae.model.service import ModelService
from personae.observability import metrics
from personae.observability.logs import install_request_ids
from personae.redact import install_log_redaction
from personae.state import AppState

log = logging.getLogger("personae")

DESCRIPTION = """\
Personae serves one core through two dialects:

* the **agents API** at `/api/v1` (`Authorization: Bearer KEY`, errors as `{"error": "…"}`),
* the **characters API** at `/v1` (`X-API-Key: KEY`, errors as
  `{"error": {"code", "message", "status", "details"}}`),

and a third for OpenAI's SDKs: the **OpenAI-compatible endpoint** at `/openai/v1`
(`POST /openai/v1/chat/completions` with a character as `model`, errors as
`{"error": {"message", "type", "param", "code"}}`).

All accept both headers. Every authenticated response carries `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds).
"""

# Room for the form's text fields and multipart framing around an upload.
MULTIPART_OVERHEAD = 256 * 1024


async def prepare_database(state: AppState) -> None:
    """Migrate to head and seed what must exist (the default plans, the embedded model),
    one starting process at a time."""
    async with migrate.startup_lock(state.settings):
        await migrate.upgrade(state.settings)
        async with state.sessionmaker.begin() as session:
            await AccountService(session).ensure_default_plans()
            if state.settings.embedded_llm:
                await ModelService(session).ensure_embedded_llm()
            if state.settings.placeholder_images:
                await ModelService(session).ensure_placeholder_images()


async def start_queue(state: AppState, *, consume: bool) -> list[asyncio.Task[None]]:
    """Connect to the task queue. A process that runs jobs (the server with memory://,
    `personae worker` otherwise) registers them, sends again what was left unfinished, and
    keeps two loops going: the image sweeper and the webhook relay (the tasks returned)."""
    runs_jobs = consume or state.queue.in_process
    if runs_jobs:
        state.queue.handle(state.image_jobs.run, state.webhook_deliveries.run)
    await state.queue.start(consume=consume)
    if not runs_jobs:
        return []
    await state.image_jobs.sweep(everything=state.queue.in_process)
    return [
        asyncio.create_task(state.image_jobs.sweep_forever(state.settings.job_lease_seconds / 2)),
        asyncio.create_task(state.webhook_deliveries.relay_forever()),
    ]


async def preload_default_llm(state: AppState) -> None:
    """Start the default language model's engine now rather than on the first turn (an
    embedded model's engine process takes a moment to load). A failure is logged; the
    first turn then tries again and reports it."""
    try:
        async with state.sessionmaker() as session:
            model = await ModelService(session).resolve_llm(None)
        await state.llm_engines.get(model)
    except PersonaeError as exc:
        log.warning("the default language model did not start: %s", exc.message)


async def finish_turns(state: AppState) -> None:
    """At shutdown, once requests have had their grace period: let releases under way end,
    then release the turns this process still runs, so none is left half-charged."""
    await drain_releases()
    try:
        released = await state.turns.stop()
    except Exception:  # the database went first; the next start's sweep releases them
        log.exception("could not release the chat turns still running at shutdown")
        return
    if released:
        log.warning("released %d chat turns cut off by the shutdown", released)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_redaction()  # here, once the server has configured its logging
        install_request_ids()
        state = AppState.build(settings)
        background: list[asyncio.Task[None]] = []
        try:
            await prepare_database(state)
            app.state.personae = state
            await state.turns.beat()  # registered before the first turn can start
            background.append(asyncio.create_task(state.turns.run_forever()))
            trending = refresh_trending_forever(
                state.sessionmaker, state.storage, settings.trending_refresh_seconds
            )
            background.append(asyncio.create_task(trending))
            background.append(asyncio.create_task(state.idempotency.sweep_forever()))
            background.append(asyncio.create_task(state.authenticator.run_forever()))
            background.append(asyncio.create_task(state.chat_activity.run_forever()))
            if settings.llm_preload:
                background.append(asyncio.create_task(preload_default_llm(state)))
            background += await start_queue(state, consume=False)
            # What start-up made (modules, the routes, the ORM's mappers) lives as long as
            # the process: out of the collector's sight, a full collection does not walk it
            # again and again under load (pauses of 100 ms and more before).
            gc.collect()
            gc.freeze()
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if hasattr(app.state, "personae"):
                await finish_turns(state)
            await state.close()
            metrics.process_stopped()

    app = FastAPI(
        title="Personae",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Starlette's slash redirect builds its Location from the request's Host header;
        # `/api/v1/agents/` is a 404 that names the path without the slash instead.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    install_openapi(app)
    # Added first = innermost: errors become responses, then headers go on, then the cap.
    app.add_middleware(UnexpectedErrorMiddleware)
    # Inside the rate-limit headers: the answers it gives itself (replays, 409s) carry them.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        json_cap=settings.max_json_body_bytes,
        multipart_cap=settings.max_upload_bytes + MULTIPART_OVERHEAD,
    )
    app.add_middleware(HeaderLimitMiddleware, cap=settings.max_header_bytes)
    # Outermost: a key in the URL is refused before anything counts or reads the request;
    # CORS answers preflights (and marks errors too); every response gets the headers.
    app.add_middleware(QueryKeyMiddleware)
    add_cors(app, settings)
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost of ours: every response, refusals included, carries the request id and
    # counts in the metrics.
    app.add_middleware(ObserveRequests)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(files_router)
    app.include_router(agents_router)
    app.include_router(characters_router)
    app.include_router(openai_router)
    install_console(app)
    return app
