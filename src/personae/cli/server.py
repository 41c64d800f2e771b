"""The server's commands: `serve`, `worker`, and the operator's groups.

Kept apart from `main` so that `personae chat` runs where only the client is installed
(`pip install 'personae[chat]'`): these import the server's dependencies.
"""

from __future__ import annotations

from typing import Annotated

import typer

from personae.cli.accounts import accounts, keys
from personae.cli.engine import engine
from personae.cli.models import models
from personae.cli.plans import plans
from personae.config import Settings
from personae.observability.logs import configure_process_logging, log_config
from personae.observability.metrics import MULTIPROC_ENV, fresh_metrics_dir


def add_server_commands(app: typer.Typer) -> None:
    """Adds `serve`, `worker` and the operator's command groups to `app`."""
    app.command()(serve)
    app.command()(worker)
    app.add_typer(accounts, name="accounts")
    app.add_typer(keys, name="keys")
    app.add_typer(plans, name="plans")
    app.add_typer(models, name="models")
    app.add_typer(engine, name="engine")


# What uvicorn's h11 parser buffers beyond PERSONAE_MAX_HEADER_BYTES (the request line, the
# separators): a request slightly over the cap is answered 431 by the app, in the dialect's
# shape, and only one far over it is cut off by the server.
HEADER_SLACK = 16 * 1024


def serve(
    host: Annotated[str | None, typer.Option(help="Default: PERSONAE_HOST or 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: PERSONAE_PORT or 8000.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Run the HTTP server (migrates the database first)."""
    import uvicorn

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts these
    server = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(settings.log_level, settings.log_format),
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "h11_max_incomplete_event_size": settings.max_header_bytes + HEADER_SLACK,
    }
    if workers == 1:
        from personae.app import create_app

        uvicorn.run(create_app(settings), **server)  # type: ignore[arg-type]
        return
    # Several processes: each imports the factory and reads the same environment, and
    # their metrics meet in files that any of them adds up for a scrape.
    import os

    os.environ.update({f"PERSONAE_{k.upper()}": str(v) for k, v in overrides.items()})
    os.environ.setdefault(MULTIPROC_ENV, str(fresh_metrics_dir(settings.data_dir)))
    uvicorn.run("personae.app:create_app", factory=True, workers=workers, **server)  # type: ignore[arg-type]


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs at once; default PERSONAE_WORKER_CONCURRENCY.")
    ] = None,
) -> None:
    """Run image jobs from the broker at PERSONAE_QUEUE_URL (redis:// or amqp://)."""
    import asyncio

    from personae.worker import run_worker

    overrides = {"worker_concurrency": concurrency} if concurrency else {}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_process_logging(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings))
