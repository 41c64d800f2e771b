"""`personae serve` as a user runs it: a real process on a free port, SQLite in a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any

from llm_servers import free_port, wait_until_serving

Server = tuple[str, dict[str, str], subprocess.Popen[bytes]]


@contextmanager
def serving(data_dir: Path, output: IO[bytes] | None = None, **settings: str) -> Iterator[Server]:
    """`personae serve` on a free port with its data in `data_dir` (SQLite) and the given
    `PERSONAE_*` settings; yields its base URL, its environment and its process. Its log
    goes to `output` if given (for a test that reads it), else to a temporary file."""
    port = free_port()
    env = os.environ | {"PERSONAE_DATA_DIR": str(data_dir), "PERSONAE_PORT": str(port)}
    env |= {f"PERSONAE_{name.upper()}": value for name, value in settings.items()}
    for name in ("PERSONAE_DATABASE_URL", "PERSONAE_REDIS_URL", "PERSONAE_API_KEY"):
        env.pop(name, None)
    # The server's log goes to a file: a pipe nobody reads would fill and block it.
    with nullcontext(output) if output else tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "personae", "serve"], env=env, stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/health", proc, log, timeout=60)
            yield base, env, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)


def cli(env: dict[str, str], *args: str) -> Any:
    """`personae ARGS --json` against the server's database; its parsed output."""
    done = subprocess.run(
        [sys.executable, "-m", "personae", *args, "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def new_key(env: dict[str, str], username: str, plan: str = "premium") -> str:
    """A new account's API key, made with the operator's command."""
    return str(cli(env, "accounts", "create", "--username", username, "--plan", plan)["api_key"])
