"""The system message template: the default, an operator's file, and the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from personae.conversation.prompt import PromptTemplate
from personae.models import Character


def vexa() -> Character:
    return Character(
        name="Vexa", description="A courier", personality="Defiant", background="", tags=[]
    )


def test_default_template_puts_the_character_first() -> None:
    text = PromptTemplate().system_message(vexa(), "Keep answers short.")
    assert text.startswith("You are Vexa.")
    assert "Description: A courier" in text
    assert "Personality: Defiant" in text
    assert "Background" not in text  # empty fields are left out
    assert text.endswith("Keep answers short.")
    assert PromptTemplate().system_message(None, "") == ""


def test_operator_template_file(tmp_path: Path) -> None:
    path = tmp_path / "system.j2"
    path.write_text("[{{ character.name | upper }}] {{ system_prompt }}")
    assert PromptTemplate.from_file(path).system_message(vexa(), "Be kind.") == "[VEXA] Be kind."


def test_templates_run_sandboxed() -> None:
    template = PromptTemplate("{{ character.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SecurityError):
        template.system_message(vexa(), "")
