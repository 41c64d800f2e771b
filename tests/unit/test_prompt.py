"""The prompt template: the default, an operator's file, the sandbox, and the names."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from personae.conversation.prompt import PromptTemplate, fill_names, greetings
from personae.models import Character


def vexa(**kw: object) -> Character:
    fields: dict[str, object] = {
        "name": "Vexa",
        "description": "a courier who runs the rooftops of {{user}}'s city",
        "personality": "Defiant",
        "background": "",
        "tags": [],
    }
    return Character(**(fields | kw))


def test_default_template_puts_the_name_first() -> None:
    prompt = PromptTemplate().render(
        vexa(
            scenario="{{char}} waits on a roof.",
            example_dialogue="<START>\nUser: Hi\n{{char}}: Go.",
        ),
        "Keep answers short.",
    )
    assert prompt.system.startswith(
        "Your name is Vexa. You are Vexa, a courier who runs the rooftops of User's city"
    )
    assert "Vexa's personality: Defiant" in prompt.system
    assert "background" not in prompt.system  # empty fields are left out
    assert "Scenario: Vexa waits on a roof." in prompt.system
    assert "User: Hi\nVexa: Go." in prompt.system
    assert "<START>" not in prompt.system
    assert "Keep answers short." in prompt.system
    assert prompt.post_history == ""  # the default has none (see DEFAULT_TEMPLATE)


def test_without_a_character_only_the_system_prompt_is_sent() -> None:
    prompt = PromptTemplate().render(None, "Be brief.")
    assert (prompt.system, prompt.post_history) == ("Be brief.", "")
    assert PromptTemplate().render(None, "").system == ""


def test_operator_template_without_blocks_is_the_system_message(tmp_path: Path) -> None:
    path = tmp_path / "system.j2"
    path.write_text("[{{ character.name | upper }}] {{ system_prompt }}")
    prompt = PromptTemplate.from_file(path).render(vexa(), "Be kind.")
    assert (prompt.system, prompt.post_history) == ("[VEXA] Be kind.", "")


def test_operator_template_with_blocks(tmp_path: Path) -> None:
    path = tmp_path / "blocks.j2"
    path.write_text(
        "{% block system %}I am {{ char }}.{% endblock %}"
        "{% block post_history %}({{ char }} talks to {{ user }}){% endblock %}"
    )
    prompt = PromptTemplate.from_file(path).render(vexa(), "")
    assert (prompt.system, prompt.post_history) == ("I am Vexa.", "(Vexa talks to User)")


def test_templates_run_sandboxed() -> None:
    template = PromptTemplate("{{ character.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SecurityError):
        template.render(vexa(), "")


def test_names_are_filled_in_any_spelling() -> None:
    text = "{{char}} greets {{ User }}; <BOT> and <USER> too. {{other}} stays."
    assert fill_names(text, "Vexa", "Sam") == "Vexa greets Sam; Vexa and Sam too. {{other}} stays."


def test_greetings_are_the_greeting_then_its_alternates() -> None:
    assert greetings(vexa()) == []
    character = vexa(greeting="Hey {{user}}.", alternate_greetings=["{{char}} nods."])
    assert greetings(character) == ["Hey User.", "Vexa nods."]
