"""Settings, read from the environment with the ``PERSONAE_`` prefix (and a ``.env`` file)."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["text", "json"]
StorageBackend = Literal["local", "s3"]

# An origin as browsers send it: scheme, host (a name or a bracketed IPv6) and port.
ORIGIN_RE = re.compile(r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3  # a guess where the OS does not say


class Settings(BaseSettings):
    """Every option the server reads. `docs/configuration.md` documents each one."""

    model_config = SettingsConfigDict(env_prefix="PERSONAE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./.personae"), description="Where SQLite and files live.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file `personae.db` in the data dir.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for shared rate limits and for announcing key and account changes "
        "to every process; unset keeps limits in this process.",
    )
    auth_cache_seconds: float = Field(
        default=10,
        ge=0,
        le=300,
        description="How long a verified API key and its account are remembered by a process. "
        "Revocations, plan changes and top-ups are announced and take effect at once; this "
        "bounds what a missed announcement can cost. 0: look the key up on every request.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(
        default=None,
        description="Base of the absolute URLs the API returns; default http://HOST:PORT.",
    )
    cors_allowed_origins: str = Field(
        default="",
        description="Comma-separated origins (scheme://host[:port]) browsers may call the API "
        "from, or `*`; empty: none.",
    )
    file_signing_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated secrets for signed file URLs; the first signs, all verify. "
        "Default: one generated and kept in DATA_DIR/file-signing.key.",
    )
    file_url_ttl_seconds: int = Field(
        default=3600, ge=60, le=7 * 86400, description="How long a signed file URL lives."
    )
    storage_backend: StorageBackend = Field(
        default="local",
        description="Where files live: `local` (DATA_DIR/files, served by the API) or `s3` (an "
        "S3-compatible bucket, served by the store; for several machines).",
    )
    s3_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The bucket of the s3 backend (required with it).",
    )
    s3_endpoint_url: str = Field(
        default="",
        pattern=r"^(https?://[^/?#]+/?)?$",
        description="The S3-compatible server (MinIO, Ceph, R2...), scheme://host[:port]; "
        "empty: AWS S3.",
    )
    s3_region: str = Field(
        default="us-east-1",
        pattern=r"^[a-z0-9-]{1,50}$",
        description="The bucket's region (part of every signature).",
    )
    s3_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._/-]{0,200}$",
        description="Key prefix inside the bucket, so that installs can share one.",
    )
    s3_public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^?#]+$",
        description="Base of public files' plain URLs, serving the bucket's root (a CDN); "
        "default ENDPOINT/BUCKET/KEY.",
    )
    max_json_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Abuse limits (docs/security.md): request headers, what an account may keep, turns.
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest total size of a request's headers (names and values): 431.",
    )
    max_characters_per_account: int = Field(
        default=1_000, ge=1, description="Characters (agents) one account may keep; then 429."
    )
    max_conversations_per_account: int = Field(
        default=10_000, ge=1, description="Conversations one account may keep; then 429."
    )
    max_webhooks_per_account: int = Field(
        default=20, ge=1, description="Webhooks one account may register; then 429."
    )
    max_queued_images_per_account: int = Field(
        default=10,
        ge=1,
        description="Image jobs (avatars included) one account may have pending or running; "
        "then 429.",
    )
    max_generation_seconds: float = Field(
        default=300,
        gt=0,
        description="A turn's longest generation; the answer ends there as at its length "
        "limit (504 if nothing was generated by then).",
    )
    trending_refresh_seconds: float = Field(default=900, gt=0)
    embedded_llm: bool = Field(
        default=True, description="Register the bundled SmolLM2 model on start if missing."
    )
    chat_max_tokens: int = Field(default=256, ge=1, le=8192, description="Default answer length.")
    llama_server: Path | None = Field(
        default=None,
        description="The llama-server binary for embedded models; default: the build "
        "`make install` made (<venv>/llama.cpp/llama-server).",
    )
    llm_parallel: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Sequences an embedded model decodes together; default 4 per core, 2 to 16.",
    )
    llm_max_queued: int = Field(
        default=64,
        ge=0,
        description="Turns that wait for an embedded model beyond those; then 503.",
    )
    llm_memory_budget_mb: int | None = Field(
        default=None,
        ge=64,
        description="Memory for loaded embedded models; the least recently used is unloaded "
        "to make room. Default: half the machine's memory.",
    )
    llm_start_timeout_seconds: float = Field(
        default=120, gt=0, description="How long an embedded model may take to load."
    )
    llm_preload: bool = Field(
        default=True, description="Start the default language model when the server starts."
    )
    prompt_template_file: Path | None = Field(
        default=None, description="A Jinja template for the system message."
    )
    queue_url: str = Field(
        default="memory://",
        pattern=r"^(memory://|redis://|rediss://|amqp://|amqps://)",
        description="Task queue broker: memory:// (jobs run in the server), redis:// or amqp://.",
    )
    queue_name: str = Field(
        default="personae",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Stream, queue and exchange name on the broker; lets installs share one.",
    )
    image_wait_seconds: float = Field(
        default=60, ge=0, description="How long POST /api/v1/images waits for its image."
    )
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs run at once per process.")
    job_lease_seconds: float = Field(
        default=60, gt=0, description="A running job whose worker is silent this long is retried."
    )
    job_requeue_seconds: float = Field(
        default=300, gt=0, description="A job pending this long is sent to the queue again."
    )
    job_max_attempts: int = Field(default=3, ge=1, description="Runs before a job is failed.")
    placeholder_images: bool = Field(
        default=True, description="Register the placeholder image model on start if missing."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs that resolve to private, loopback or link-local addresses.",
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0, description="Per delivery attempt.")
    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        pattern=r"^\d+(\.\d+)?(,\d+(\.\d+)?)*$",
        description="Seconds before each retry (each +-20% jitter); its length + 1 attempts.",
    )
    webhook_disable_after_seconds: float = Field(
        default=5 * 86400, gt=0, description="A webhook failing this long is disabled."
    )
    webhook_concurrency: int = Field(default=16, ge=1, description="Deliveries at once.")
    webhook_endpoint_concurrency: int = Field(
        default=4, ge=1, description="Deliveries at once to one webhook."
    )
    webhook_relay_seconds: float = Field(
        default=1, gt=0, description="How often due deliveries are sent to the queue."
    )
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    webhook_secret_overlap_seconds: float = Field(
        default=86400, ge=0, description="How long a rotated-out secret still signs."
    )
    log_level: str = "info"
    log_format: LogFormat = Field(
        default="text",
        description="`text` (uvicorn's lines) or `json` (one object a line, with `request_id`).",
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics at `GET /metrics`."
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections each process keeps open."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, description="Connections opened beyond the pool under load."
    )
    db_pool_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="How long a request waits for a free connection; then 503 with Retry-After.",
    )
    turn_heartbeat_seconds: float = Field(
        default=10,
        gt=0,
        description="How often a server records that it lives and sweeps the chat turns of "
        "servers that stopped (silent for 3 beats): their holds are given back.",
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=0,
        description="On SIGTERM, how long requests and streams in flight may finish; turns "
        "still running then are released.",
    )
    idempotency_key_ttl_seconds: float = Field(
        default=86400,
        ge=60,
        description="How long an `Idempotency-Key` and its stored response are kept.",
    )
    lorebook_scan_depth: int = Field(
        default=4,
        ge=0,
        le=100,
        description="How many recent messages (the new one included) a lorebook's keys are "
        "looked for in, unless the book sets its own `scan_depth`.",
    )
    lorebook_token_budget: int = Field(
        default=512,
        ge=0,
        le=32_000,
        description="The most tokens a lorebook's entries add to a prompt; a book's own "
        "`token_budget` may only lower it.",
    )
    lorebook_max_recursion: int = Field(
        default=2,
        ge=0,
        le=10,
        description="For a book with `recursive_scanning`: how many times the entries that "
        "fired are scanned for more keys.",
    )
    signup: Literal["open", "invite", "closed"] = Field(
        default="open",
        description="Who may make an account in the console at /console: `open` (anyone), "
        "`invite` (with a code an admin made), `closed` (only the operator's CLI).",
    )
    console_session_hours: int = Field(
        default=336, ge=1, le=24 * 365, description="How long a console sign-in lasts."
    )
    console_secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="The `Secure` flag of the console's cookies: `auto` sets it unless the "
        "request came over plain HTTP to a loopback address (a laptop's `make serve`).",
    )
    console_logins_per_minute: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Sign-in and sign-up attempts allowed per minute, per username and per "
        "client address (and five times as many per address across usernames).",
    )

    @field_validator("public_url", "s3_endpoint_url", "s3_public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("s3_bucket", "s3_public_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # what `VAR=` in a compose file gives

    @field_validator("s3_prefix")
    @classmethod
    def _strip_prefix_slashes(cls, value: str) -> str:
        return value.strip("/")

    @model_validator(mode="after")
    def _check_storage(self) -> Settings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError(
                "PERSONAE_STORAGE_BACKEND=s3 needs PERSONAE_S3_BUCKET (the bucket's name)"
            )
        return self

    @field_validator("cors_allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in _split(value):
            if origin != "*" and not ORIGIN_RE.match(origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        return value

    @field_validator("file_signing_keys")
    @classmethod
    def _check_signing_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        keys = _split(value.get_secret_value())
        if not keys or any(len(k) < 32 for k in keys):
            raise ValueError("each file signing key must be at least 32 characters")
        return value

    @property
    def cors_origins(self) -> list[str]:
        return _split(self.cors_allowed_origins)

    @property
    def retry_delays(self) -> list[float]:
        return [float(v) for v in self.webhook_retry_schedule.split(",")]

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'personae.db').resolve()}"

    @cached_property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def llm_memory_budget_bytes(self) -> int:
        if self.llm_memory_budget_mb:
            return self.llm_memory_budget_mb * 1024 * 1024
        return physical_memory() // 2

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
