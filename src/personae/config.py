"""Settings, read from the environment with the ``PERSONAE_`` prefix (and a ``.env`` file)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description="Redis for shared rate limits; unset keeps limits in this process.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(
        default=None,
        description="Base of the absolute URLs the API returns; default http://HOST:PORT.",
    )
    max_json_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
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

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

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
