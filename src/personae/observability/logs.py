"""Log formats (`PERSONAE_LOG_FORMAT`: text or json) and the request id on every record.

Each HTTP request has an id (`api/observe.py` picks it: the client's
`X-Request-Id` when it is a sane token, else a new one), kept in a context variable for
as long as the request runs. A log record factory copies it onto every record as
`request_id` ("-" outside a request), whichever logger writes it (ours, uvicorn's access
and error logs, taskiq's), so a JSON line can be traced back to the response that carried
the same id. JSON lines come from python-json-logger; secrets are scrubbed before either
format writes them (personae.redact).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from personae.config import LogFormat

REQUEST_ID: ContextVar[str | None] = ContextVar("personae_request_id", default=None)
NO_REQUEST = "-"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s %(request_id)s"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


@contextmanager
def carrying_request_id(request_id: str | None) -> Iterator[None]:
    """Log records written inside carry `request_id`: a request's own, or the one an image
    job or a webhook event was made by."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def install_request_ids() -> None:
    """Give every log record a `request_id` attribute (once per process)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "personae_request_ids", False):
        return

    def with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = REQUEST_ID.get() or NO_REQUEST
        return record

    with_request_id.personae_request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(with_request_id)


def _json_formatter() -> dict[str, Any]:
    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": JSON_FIELDS,
        "rename_fields": JSON_RENAMES,
        "timestamp": False,
    }


def log_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """uvicorn's logging configuration, in `log_format`, with our own logger beside its
    loggers (at `level`)."""
    if log_format == "json":
        formatters = {"default": _json_formatter(), "access": _json_formatter()}
    else:
        formatters = {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
        }
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": ["access"], "level": upper, "propagate": False},
            "personae": {"handlers": ["default"], "level": upper, "propagate": False},
        },
    }


def configure_process_logging(level: str, log_format: LogFormat) -> None:
    """Logging for a process uvicorn does not configure (`personae worker`): everything to
    stderr in `log_format`."""
    install_request_ids()
    handler = logging.StreamHandler()
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
