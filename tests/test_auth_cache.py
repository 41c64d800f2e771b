"""The authentication cache across processes: a server remembers a verified key for a while
(`PERSONAE_AUTH_CACHE_SECONDS`, set long here so that expiry cannot explain a result), yet
a key revoked, a plan changed or a balance topped up by another process (the operator's
CLI) takes effect at the server's very next request.

On one machine the announcement travels through the data directory; across machines (here:
servers with data directories of their own, sharing PostgreSQL) through Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import truncate
from llm_servers import free_port, wait_until_serving
from personae.config import Settings

CACHE_SECONDS = "300"


def environment(data_dir: Path, **settings: str) -> dict[str, str]:
    env = os.environ | {"PERSONAE_DATA_DIR": str(data_dir), "PERSONAE_LOG_LEVEL": "warning"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(f"PERSONAE_{name}", None)
    return env | {f"PERSONAE_{name.upper()}": value for name, value in settings.items()}


@contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "personae", "serve", "--port", str(port)],
            env=env | {"PERSONAE_AUTH_CACHE_SECONDS": CACHE_SECONDS},
            stdout=output,
            stderr=output,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/health", proc, output, timeout=60)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "personae", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def me(base: str, key: str) -> httpx.Response:
    return httpx.get(f"{base}/v1/user/me", headers={"X-API-Key": key})


def assert_changes_reach(servers: list[str], operator: dict[str, str]) -> None:
    """Each change made by the operator's CLI is seen by every server's next request."""
    created = cli(operator, "accounts", "create", "--username", "cached", "--plan", "standard")
    key = created["api_key"]
    for base in servers:  # remembered by every server from here on
        assert me(base, key).status_code == 200
        assert me(base, key).headers["X-RateLimit-Limit"] == "150"

    cli(operator, "accounts", "set-plan", "cached", "enterprise", "--rate-limit", "777")
    for base in servers:
        assert me(base, key).headers["X-RateLimit-Limit"] == "777"

    cli(operator, "accounts", "top-up", "cached", "12.5")
    for base in servers:
        assert me(base, key).json()["balance"] == 12.5

    cli(operator, "accounts", "set-plan", "cached", "free", "--rate-limit", "1000")
    for base in servers:  # the free plan has no characters API
        answer = me(base, key)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "subscription_required"
    cli(operator, "accounts", "set-plan", "cached", "standard")

    second = cli(operator, "keys", "create", "--account", "cached")["api_key"]
    for base in servers:
        assert me(base, second).status_code == 200
    cli(operator, "keys", "revoke", key[:12])
    for base in servers:
        refused = me(base, key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        # The account's other key is unaffected.
        assert me(base, second).status_code == 200


def test_one_machine_without_redis(tmp_path: Path) -> None:
    """SQLite, no Redis: the server and the CLI share the data directory."""
    env = environment(tmp_path / "data")
    with serving(env) as base:
        assert_changes_reach([base], env)


@pytest.mark.postgres
async def test_servers_on_other_machines_hear_of_changes_through_redis(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    """Two servers and the CLI, each with its own data directory (as on three machines),
    sharing PostgreSQL and Redis: only Redis can carry the announcement."""
    shared = {"database_url": postgres_database, "redis_url": redis_url}
    envs = [environment(tmp_path / f"machine{i}", **shared) for i in range(3)]
    async with truncate(Settings(database_url=postgres_database, _env_file=None)):  # type: ignore[call-arg]
        with ExitStack() as stack:
            servers = [stack.enter_context(serving(env)) for env in envs[:2]]
            assert_changes_reach(servers, envs[2])
