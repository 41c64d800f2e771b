"""Prometheus metrics (prometheus-client), served at `GET /metrics`.

Every metric is defined here, once; docs/operations.md describes each. Labels are route
templates, dialects, statuses, model ids, job kinds and outcomes: never a key, an
account, a username or any text a user wrote, so a scrape reveals no one's data and the
label sets stay small.

One process keeps its figures in memory. `personae serve --workers N` (and any deployment
that sets `PROMETHEUS_MULTIPROC_DIR`) runs prometheus-client's multiprocess mode: each
process writes its figures to files in that directory, and whichever process answers a
scrape adds them all up, so one scrape of the shared port counts every process's requests.
The directory must be set before this module is imported (prometheus-client reads it
then); the CLI does that for `--workers`.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Requests take from a millisecond to minutes (a streamed story); turns' engine times too.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ENGINE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)

HTTP_REQUESTS = Counter(
    "personae_http_requests",
    "HTTP requests answered, by method, route template, dialect and status.",
    ["method", "route", "dialect", "status"],
)
HTTP_DURATION = Histogram(
    "personae_http_request_duration_seconds",
    "Time from a request's arrival to its response's last byte.",
    ["method", "route", "dialect"],
    buckets=REQUEST_BUCKETS,
)
CHAT_TURNS = Counter(
    "personae_chat_turns",
    "Chat turns ended, by model and outcome (completed, failed: an engine error, a timeout "
    "or the client gone, whose reservation is released).",
    ["model", "outcome"],
)
CHAT_TOKENS = Counter(
    "personae_chat_tokens",
    "Tokens of completed chat turns, by model and direction (prompt, completion).",
    ["model", "direction"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "personae_chat_time_to_first_token_seconds",
    "From the engine's request to the answer's first text, by model.",
    ["model"],
    buckets=ENGINE_BUCKETS,
)
ENGINE_LATENCY = Histogram(
    "personae_engine_latency_seconds",
    "A completed turn's whole generation, by model.",
    ["model"],
    buckets=ENGINE_BUCKETS,
)
JOBS = Counter(
    "personae_jobs",
    "Background jobs ended, by kind (image, webhook) and outcome.",
    ["kind", "outcome"],
)
QUEUE_DEPTH = Gauge(
    "personae_queue_depth",
    "Jobs waiting, by kind: image jobs not yet started (as the last sweep saw them), "
    "webhook deliveries due (as the relay last saw them).",
    ["kind"],
    multiprocess_mode="max",  # every process reads the same rows
)
REFUSALS = Counter(
    "personae_refusals",
    "Requests refused by a limit: rate_limit (429, per minute), quota (429, the month's "
    "chat requests) or balance (402).",
    ["reason"],
)
DB_CONNECTIONS_IN_USE = Gauge(
    "personae_db_connections_in_use",
    "Database connections checked out of this process's pool, sampled at each request's end.",
    multiprocess_mode="livesum",
)


def fresh_metrics_dir(data_dir: Path) -> Path:
    """`DATA_DIR/metrics`, emptied: the shared directory of `serve --workers N`, whose
    files from an earlier run would otherwise be counted again."""
    directory = data_dir / "metrics"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render() -> bytes:
    """The exposition of every metric: this process's, or all processes' in multiprocess
    mode."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_stopped() -> None:
    """Drop this process's live gauges from the shared figures (multiprocess mode)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
