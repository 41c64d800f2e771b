"""The `personae` CLI, in-process, against a fresh data directory."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image
from typer.testing import CliRunner

from conftest import make_client
from personae.app import create_app
from personae.cli.main import app as cli
from personae.config import Settings
from personae.model.service import EMBEDDED_SAMPLING
from personae.storage.processing import sanitize_image

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PERSONAE_DATABASE_URL", raising=False)
    return tmp_path


def ok(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code != 0, result.output
    return result.output


def test_create_account_json_and_key_works_over_http(data_dir: Path) -> None:
    out = ok(
        "accounts",
        "create",
        "--username",
        "alice",
        "--email",
        "a@example.com",
        "--plan",
        "standard",
        "--balance",
        "2.5",
        "--json",
    )
    created = json.loads(out)
    assert created["username"] == "alice"
    assert created["plan"] == "standard"
    assert created["balance"] == 2.5
    assert created["id"].startswith("user_")
    assert created["api_key"].startswith("prs_")

    async def call() -> httpx.Response:
        app = create_app(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
        async with LifespanManager(app), make_client(app) as client:
            return await client.get("/v1/user/me", headers={"X-API-Key": created["api_key"]})

    import asyncio

    response = asyncio.run(call())
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert "X-RateLimit-Remaining" in response.headers


def test_key_is_shown_once_and_never_listed(data_dir: Path) -> None:
    created = json.loads(ok("accounts", "create", "--username", "bob", "--json"))
    listed = ok("keys", "list", "--account", "bob", "--json")
    assert created["api_key"] not in listed
    assert json.loads(listed)[0]["prefix"] == created["api_key"][:12]
    assert created["plan"] == "free"


def test_keys_create_and_revoke(data_dir: Path) -> None:
    ok("accounts", "create", "--username", "carol")
    second = json.loads(ok("keys", "create", "--account", "carol", "--name", "ci", "--json"))
    assert second["api_key"].startswith(second["prefix"])
    out = ok("keys", "revoke", second["prefix"])
    assert "revoked" in out
    keys = json.loads(ok("keys", "list", "--account", "carol", "--json"))
    assert [k["revoked_at"] is not None for k in keys] == [False, True]
    assert "no API key" in fails("keys", "revoke", "prs_NOTAKEY1")


def test_set_plan_top_up_and_list(data_dir: Path) -> None:
    ok("accounts", "create", "--username", "dave")
    out = json.loads(
        ok(
            "accounts",
            "set-plan",
            "dave",
            "enterprise",
            "--rate-limit",
            "5000",
            "--monthly-chat-requests",
            "1000000",
            "--json",
        )
    )
    assert out["plan"] == "enterprise"
    assert out["rate_limit_per_minute"] == 5000
    assert out["chat_requests_per_month"] == 1_000_000
    assert json.loads(ok("accounts", "top-up", "dave", "3.25", "--json"))["balance"] == 3.25
    assert json.loads(ok("accounts", "top-up", "dave", "0.75", "--json"))["balance"] == 4.0
    listed = json.loads(ok("accounts", "list", "--json"))
    assert [a["username"] for a in listed] == ["dave"]
    assert "dave" in ok("accounts", "list")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts", "create", "--username", "x"], "username"),
        (["accounts", "create", "--username", "erin", "--plan", "gold"], "unknown plan"),
        (["accounts", "create", "--username", "erin", "--email", "nope"], "email"),
        (["accounts", "create", "--username", "erin", "--balance", "lots"], "amount"),
        (["accounts", "create", "--username", "erin", "--balance", "-1"], "balance"),
        (["accounts", "top-up", "nobody", "1"], "no account"),
        (["accounts", "set-plan", "nobody", "pro"], "no account"),
    ],
)
def test_bad_input_is_a_clear_error(data_dir: Path, args: list[str], message: str) -> None:
    assert message in fails(*args)


def test_duplicate_username_and_email(data_dir: Path) -> None:
    ok("accounts", "create", "--username", "frank", "--email", "f@example.com")
    assert "username: already in use" in fails("accounts", "create", "--username", "frank")
    assert "email: already in use" in fails(
        "accounts", "create", "--username", "frank2", "--email", "f@example.com"
    )


def test_top_up_must_be_positive(data_dir: Path) -> None:
    ok("accounts", "create", "--username", "gina")
    assert "positive" in fails("accounts", "top-up", "gina", "0")


def test_plans_are_data(data_dir: Path) -> None:
    plans = {p["name"]: p for p in json.loads(ok("plans", "list", "--json"))}
    assert plans["free"]["requests_per_minute"] == 5
    assert plans["free"]["characters_api"] == "none"
    assert plans["premium"]["webhooks"] is True
    changed = json.loads(ok("plans", "set", "free", "--requests-per-minute", "9", "--json"))
    assert changed["requests_per_minute"] == 9
    # Restarting (re-seeding defaults) keeps the operator's edit.
    plans = {p["name"]: p for p in json.loads(ok("plans", "list", "--json"))}
    assert plans["free"]["requests_per_minute"] == 9
    assert "unknown plan" in fails("plans", "set", "gold", "--requests-per-minute", "1")


def test_models_add_list_disable_remove(data_dir: Path) -> None:
    listed = json.loads(ok("models", "list", "--json"))
    assert [(m["type"], m["name"]) for m in listed] == [
        ("llm", "SmolLM2-135M-Instruct (embedded)"),
        ("sd", "Placeholder avatars (drawn, no diffusion)"),
    ]
    assert listed[0]["settings"] == {
        "path": "builtin:smollm2",
        "n_ctx": 2048,
        "sampling": EMBEDDED_SAMPLING,
    }
    remote = json.loads(ok(
        "models", "add", "--name", "vLLM Llama", "--engine", "openai", "--base-url",
        "http://vllm.internal:8000/v1", "--model", "llama-3-8b", "--api-key", "sk-secret",
        "--max-context", "8192", "--cost-per-1k-tokens", "0.06", "--json",
    ))  # fmt: skip
    assert remote["max_context"] == 8192
    assert remote["cost"] == 0.06
    assert remote["settings"]["api_key"] == "***"  # never printed
    gguf = json.loads(ok(
        "models", "add", "--name", "Local", "--engine", "llama_cpp", "--path", "builtin:smollm2",
        "--settings", '{"parallel": 2}', "--json",
    ))  # fmt: skip
    assert gguf["settings"]["parallel"] == 2
    assert json.loads(ok("models", "disable", remote["id"], "--json"))["enabled"] is False
    assert json.loads(ok("models", "enable", remote["id"], "--json"))["enabled"] is True
    assert "removed" in ok("models", "remove", gguf["id"])
    assert len(json.loads(ok("models", "list", "--json"))) == 3


def test_models_add_image_models(data_dir: Path) -> None:
    a1111 = json.loads(ok(
        "models", "add", "--type", "sd", "--name", "SD.Next", "--engine", "automatic1111",
        "--base-url", "http://sd.internal:7860", "--settings", '{"api_auth": "me:pw"}',
        "--cost-per-image", "0.04", "--json",
    ))  # fmt: skip
    assert (a1111["type"], a1111["cost"], a1111["max_context"]) == ("sd", 0.04, None)
    assert a1111["settings"]["api_auth"] == "***"  # never printed
    assert a1111["settings"]["width"] == 512  # the engine's defaults are stored
    assert "--cost-per-image" in fails(
        "models", "add", "--type", "sd", "--name", "x", "--engine", "placeholder",
        "--cost-per-1k-tokens", "1",
    )  # fmt: skip
    assert "unknown image engine" in fails(
        "models", "add", "--type", "sd", "--name", "x", "--engine", "llama_cpp"
    )
    assert "context window" in fails(
        "models", "add", "--type", "sd", "--name", "x", "--engine", "placeholder",
        "--max-context", "1024",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "gpt"], "unknown LLM engine"),
        (["--engine", "openai", "--model", "m"], "base_url"),
        (["--engine", "openai", "--base-url", "ftp://x", "--model", "m"], "base_url"),
        (["--engine", "llama_cpp"], "path"),
        (["--engine", "llama_cpp", "--path", "x.gguf", "--settings", "[1]"], "JSON object"),
        (
            ["--engine", "llama_cpp", "--path", "x.gguf", "--settings", '{"parallel": 0}'],
            "parallel",
        ),
        (["--engine", "llama_cpp", "--path", "x.gguf", "--cost-per-1k-tokens", "-1"], "cost"),
        (["--engine", "llama_cpp", "--path", "x.gguf", "--max-context", "10"], "max_context"),
    ],
)
def test_models_add_refuses_bad_settings(data_dir: Path, args: list[str], message: str) -> None:
    assert message in fails("models", "add", "--name", "bad", *args)
    assert len(json.loads(ok("models", "list", "--json"))) == 2


def test_disabled_embedded_models_stay_disabled(data_dir: Path) -> None:
    for model in json.loads(ok("models", "list", "--json")):
        ok("models", "disable", model["id"])
    # Every command re-runs the start-up seeding: the operator's choice sticks.
    listed = json.loads(ok("models", "list", "--json"))
    assert [m["enabled"] for m in listed] == [False, False]


def at_80_columns(*args: str) -> list[str]:
    """The CLI's output lines in a fresh process with COLUMNS=80, as an 80-column terminal
    would show them (rich reads the width when the process starts)."""
    result = subprocess.run(
        [sys.executable, "-m", "personae", *args],
        env=os.environ | {"COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    return lines


def test_tables_keep_ids_whole_at_80_columns(data_dir: Path) -> None:
    for n in range(3):
        ok("accounts", "create", "--username", f"user{n}_" + "x" * 25,
           "--email", f"someone.with.a.long.name{n}@a-rather-long-domain.example.com")  # fmt: skip
    ok("models", "add", "--name", "A remote model with a long display name " * 2,
       "--engine", "openai", "--base-url", "http://vllm.internal:8000/v1", "--model", "m")  # fmt: skip
    for command in (["accounts", "list"], ["models", "list"]):
        ids = [row["id"] for row in json.loads(ok(*command, "--json"))]
        lines = at_80_columns(*command)
        for id_ in ids:
            assert any(id_ in line for line in lines), (id_, "\n".join(lines))


def test_a_new_account_shows_its_id_and_key_whole_at_80_columns(data_dir: Path) -> None:
    lines = at_80_columns(
        "accounts", "create", "--username", "y" * 32, "--email", "e" * 40 + "@example.com"
    )
    account = json.loads(ok("accounts", "list", "--json"))[0]
    assert any(account["id"] in line for line in lines), "\n".join(lines)
    key = next(line for line in lines if line.startswith("API key")).split()[-1]
    prefix = json.loads(ok("keys", "list", "--account", account["id"], "--json"))[0]["prefix"]
    other = json.loads(ok("accounts", "create", "--username", "zoe", "--json"))["api_key"]
    assert key.startswith(prefix)
    assert len(key) == len(other)


@pytest.mark.parametrize(
    "command",
    [
        ["accounts", "create"],
        ["accounts", "list"],
        ["accounts", "set-plan"],
        ["accounts", "top-up"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["plans", "list"],
        ["plans", "set"],
        ["models", "list"],
        ["models", "add"],
        ["models", "disable"],
        ["models", "enable"],
        ["models", "remove"],
    ],
)
def test_every_command_has_json_output(command: list[str]) -> None:
    assert "--json" in ok(*command, "--help")


def test_keys_revoke_and_models_remove_print_json(data_dir: Path) -> None:
    created = json.loads(ok("accounts", "create", "--username", "hana", "--json"))
    revoked = json.loads(ok("keys", "revoke", created["key_prefix"], "--json"))
    assert revoked["prefix"] == created["key_prefix"]
    assert revoked["account_id"] == created["id"]
    assert revoked["revoked_at"] is not None
    model = json.loads(ok(
        "models", "add", "--name", "Gone", "--engine", "llama_cpp", "--path", "builtin:smollm2",
        "--json",
    ))  # fmt: skip
    assert json.loads(ok("models", "remove", model["id"], "--json")) == {
        "id": model["id"],
        "removed": True,
    }
    assert model["id"] not in ok("models", "list", "--json")


def readme_commands() -> list[str]:
    """The README's shell commands, one per line, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def test_readme_sample_image_ships_and_is_accepted() -> None:
    paths = [path for block in readme_commands() for path in re.findall(r"image=@(\S+)", block)]
    assert paths
    for path in paths:
        image = README.parent / path
        assert image.is_file(), path
        with Image.open(image) as img:
            assert img.format == "PNG"
        assert image.stat().st_size < 20_000
        limit = Settings.model_fields["max_upload_bytes"].default
        assert sanitize_image(image.read_bytes(), limit).ext == "png"


def test_readme_json_one_liners_work(data_dir: Path) -> None:
    """Every README command that captures a value from `personae ... --json` runs, and its
    pipe prints that value."""
    ran = captured = 0
    for line in readme_commands():
        match = re.search(r"personae ([^|)]*--json[^|)]*)(?:\|\s*(python3 -c '[^']*'))?", line)
        if match is None:
            continue
        output = ok(*shlex.split(match[1]))
        data = json.loads(output)
        if match[2]:
            pipe = shlex.split(match[2])
            assert pipe[:2] == ["python3", "-c"], line
            result = subprocess.run(
                [sys.executable, "-c", pipe[2]], input=output, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
            keys = [ast.literal_eval(k) for k in re.findall(r"\[([^]]+)\]", pipe[2])]
            for key in keys:
                data = data[key]
            assert result.stdout.strip() == str(data)
            captured += 1
        ran += 1
    assert ran
    assert captured
