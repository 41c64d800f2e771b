"""docs/sdk-python.md runs: its Python blocks, in order, as one program, against a live
server. A reader who copies them gets what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import Live
from images import png

DOC = Path(__file__).resolve().parent.parent / "docs" / "sdk-python.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)


def test_the_page_has_an_example_for_every_resource() -> None:
    code = "\n".join(python_blocks())
    for resource in (
        "characters", "chat", "conversations", "messages", "agents", "completions",
        "images", "models", "favorites", "user", "webhooks",
    ):  # fmt: skip
        assert f"client.{resource}." in code, resource


def test_every_example_runs_against_a_live_server(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PERSONAE_API_KEY", live.key("premium"))
    monkeypatch.setenv("PERSONAE_BASE_URL", live.base)
    monkeypatch.chdir(tmp_path)  # the page writes avatar.png
    namespace: dict[str, object] = {"__name__": "sdk_docs", "PNG": png()}
    for number, block in enumerate(python_blocks(), start=1):
        exec(compile(block, f"{DOC.name}, block {number}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "premium" in out.splitlines()[0]
    assert "404 not_found" in out  # the errors example met the error it handles
    assert "character.created Axel" in out  # the receiver verified a real delivery
    assert "Vexa Stride" in out
