"""What a secret looks like, and keeping secrets out of the logs.

An API key belongs in a header. One sent in a URL is refused (`api/security.py`), but by
then the server has the URL, and the access log writes every request's path with its query
string. `RedactSecrets` scrubs those lines, and any other log line, before they are written:
query values under a key-like name (`api_key`, `key`, `signature`, …) and anything shaped
like an API key (`prs_…`) or a webhook secret (`whsec_…`).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote_plus

# Query parameter names under which clients put credentials (compared lower-cased).
KEY_PARAMETERS = frozenset(
    {"api_key", "apikey", "api-key", "x-api-key", "key", "access_token", "authorization"}
)
# Names redacted in logs without refusing the request: a signed file URL's signature is a
# credential for that file until it expires.
REDACTED_PARAMETERS = KEY_PARAMETERS | {"signature"}
# Our API keys (`prs_` + 40 base62) and webhook secrets (`whsec_` + base64), also partial.
KEY_RE = re.compile(r"prs_[A-Za-z0-9]{8,}")
SECRET_RE = re.compile(rf"{KEY_RE.pattern}|whsec_[A-Za-z0-9+/=]{{8,}}")
# A key inside a URL-encoded value: its `_` may be escaped as %5F.
ENCODED_KEY_RE = re.compile(r"prs(_|%5F)[A-Za-z0-9]{8,}", re.IGNORECASE)
REDACTED = "[redacted]"

# The access log's arguments: client address, method, path with query, HTTP version, status.
_ACCESS_ARGS = 5
_PATH_ARG = 2


def looks_like_key(value: str) -> bool:
    """Whether a (decoded) value holds something shaped like one of our API keys."""
    return KEY_RE.search(value) is not None


def key_in_query(query: str) -> str | None:
    """The name of the first query parameter that carries an API key (by its name, or by
    a value shaped like a key), or None."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in KEY_PARAMETERS or looks_like_key(value) or looks_like_key(name):
            return name
    return None


def redact_path(path: str) -> str:
    """A request path with its query's secrets replaced by `[redacted]`."""
    base, question, query = path.partition("?")
    if question:
        parts = []
        for pair in query.split("&"):
            name, equals, value = pair.partition("=")
            if unquote_plus(name).lower() in REDACTED_PARAMETERS or looks_like_key(
                unquote_plus(value)
            ):
                value = REDACTED
            parts.append(f"{name}{equals}{value}")
        query = "&".join(parts)
    return redact(ENCODED_KEY_RE.sub(REDACTED, base + question + query))


def redact(text: str) -> str:
    return SECRET_RE.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """Scrubs secrets from a record before any handler writes it. uvicorn's access lines
    keep their argument tuple (its formatter unpacks it), with the path redacted; other
    records are redacted as formatted text when they hold a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.name == "uvicorn.access"
            and isinstance(args, tuple)
            and len(args) == _ACCESS_ARGS
        ):
            scrubbed = list(args)
            scrubbed[_PATH_ARG] = redact_path(str(args[_PATH_ARG]))
            record.args = tuple(scrubbed)
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed call: logging reports it as it would without us
        if SECRET_RE.search(message) or ENCODED_KEY_RE.search(message):
            record.msg = redact(ENCODED_KEY_RE.sub(REDACTED, message))
            record.args = None
        return True


# The loggers whose records may carry request data: uvicorn's access and error logs, ours.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi", "uvicorn", "personae")


def install_log_redaction() -> None:
    """Put `RedactSecrets` on the loggers that may see request data (once per process)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
