"""`pip install 'personae[client]'` gives the client alone: httpx, pydantic and what they
need, nothing of the server, and it works against a live server. `personae[chat]` adds the
terminal chat, without the server's commands."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import Live

ROOT = Path(__file__).resolve().parent.parent
# httpx and pydantic, and what they themselves require (names as pip lists them).
CLIENT_CLOSURE = {
    "annotated-types", "anyio", "certifi", "h11", "httpcore", "httpx", "idna", "pydantic",
    "pydantic-core", "typing-extensions", "typing-inspection",
}  # fmt: skip
SERVER_MODULES = ("fastapi", "sqlalchemy", "starlette", "uvicorn", "llama_cpp", "redis", "typer")


def test_importing_the_client_imports_nothing_of_the_server() -> None:
    probe = (
        "import sys, json, personae.client, personae.client.types;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", probe], text=True))
    heavy = [m for m in loaded if m.split(".")[0] in SERVER_MODULES]
    ours = {m for m in loaded if m.startswith("personae")}
    assert heavy == []
    assert ours <= {"personae"} | {m for m in ours if m.startswith("personae.client")}


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("client-venv")
    venv.create(where, with_pip=True)
    return where


def _pip(where: Path, *args: str) -> str:
    return subprocess.run(
        [str(where / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def _installed(where: Path) -> set[str]:
    listed = json.loads(_pip(where, "list", "--format=json", "--exclude-editable"))
    names = {p["name"].lower().replace("_", "-") for p in listed}
    return names - {"pip", "setuptools", "wheel", "personae"}


def test_a_client_install_pulls_only_httpx_and_pydantic_and_works(
    fresh_venv: Path, live: Live
) -> None:
    _pip(fresh_venv, "install", "--quiet", f"{ROOT}[client]")
    assert _installed(fresh_venv) == CLIENT_CLOSURE
    use = (
        "from personae.client import Personae;"
        "me = Personae().user.me();"
        "print(me.subscription.plan, me.rate_limit.limit)"
    )
    env = {"PERSONAE_API_KEY": live.key("standard"), "PERSONAE_BASE_URL": live.base}
    done = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", use], env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["standard", "150"], done.stderr

    # The terminal chat alone: `personae` offers `chat`, and says an API error in one line.
    _pip(fresh_venv, "install", "--quiet", f"{ROOT}[chat]")
    assert _installed(fresh_venv) - CLIENT_CLOSURE >= {"typer", "rich"}
    assert "fastapi" not in _installed(fresh_venv)
    personae = str(fresh_venv / "bin" / "personae")
    usage = subprocess.run([personae, "--help"], capture_output=True, text=True, check=True)
    commands = [line.strip("│ ").split(" ")[0] for line in usage.stdout.splitlines()]
    assert "chat" in commands
    assert "serve" not in commands
    assert "accounts" not in commands
    refused = subprocess.run(
        [personae, "chat", "char_nobody"],
        env=env | {"PERSONAE_API_KEY": "wrong", "COLUMNS": "200"}, capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stdout.strip().splitlines() == [
        "Error: 401 unauthorized: Invalid or revoked API key"
    ]
