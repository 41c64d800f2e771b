"""The system message, and the history that fits the model's context.

The system message is rendered from a Jinja template (sandboxed, since operators may
supply their own with `PERSONAE_PROMPT_TEMPLATE_FILE`). The history is read newest first
in batches and kept while it fits: a conversation of 10,000 messages costs the same as
one whose kept part is equal, because older batches are never read.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from personae.conversation.lore import Lore
from personae.engines.llm.base import ChatMessage, LLMEngine, Role
from personae.models import Character

# The default prompt. Small models attend most to the start of a prompt, so the character's
# name comes first ("Your name is X" raised the share of answers that give it), and the
# system message ends by repeating it.
DEFAULT_TEMPLATE = """\
{%- block system -%}
{%- if character -%}
Your name is {{ char }}.
{%- if lore_before %}
{{ lore_before }}
{%- endif %}
{%- if character.description %}{{ "\\n" if lore_before else " " }}You are {{ char }}, \
{{ character.description }}{% endif %}
{%- if character.personality %}
{{ char }}'s personality: {{ character.personality }}
{%- endif %}
{%- if character.background %}
{{ char }}'s background: {{ character.background }}
{%- endif %}
{%- if character.scenario %}
Scenario: {{ character.scenario }}
{%- endif %}
{%- if character.example_dialogue %}
How {{ char }} talks, for example:
{{ character.example_dialogue }}
{%- endif %}
{%- if lore_after %}
{{ lore_after }}
{%- endif %}
{%- if character.system_prompt %}
{{ character.system_prompt }}
{%- endif %}
{%- endif %}
{%- if system_prompt %}
{{ system_prompt }}
{%- endif %}
{%- if character %}
You are {{ char }}. Stay in character: answer as {{ char }}, in the first person, \
and never write {{ user }}'s lines.
{%- endif %}
{%- endblock %}
{%- block post_history -%}
{#- An instruction sent after the user's message, as a system message. Empty by default:
    with the bundled 135M model, "Reply as {{ char }}." there halved how often a character
    repeats what the user told it (bench/bench_persona.py); write one for larger models.
    A character's own post-history instructions (a Character Card's) go here. -#}
{%- if character and character.post_history_instructions -%}
{{ character.post_history_instructions }}
{%- endif -%}
{%- endblock -%}
"""

ROLES: dict[str, Role] = {"user": "user", "agent": "assistant", "system": "system"}
# A history is read newest first in batches that grow (64, 256, 1024, ...): a short
# conversation takes one small read, a long one a few large ones.
HISTORY_BATCH = 64
HISTORY_BATCH_GROWTH = 4
HISTORY_BATCH_MAX = 4096
# What `{{user}}` becomes. An account is an application speaking for its own users, whose
# names Personae does not know, so the user is "User", as chat templates call them.
USER_NAME = "User"
# The character's texts that the template sees, with `{{char}}` and `{{user}}` filled in.
CHARACTER_TEXTS = (
    "description",
    "personality",
    "background",
    "scenario",
    "example_dialogue",
    "system_prompt",
    "post_history_instructions",
)

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
# Character Cards write the two names as macros; `<BOT>` and `<USER>` are the older spelling.
_MACROS = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)


def fill_names(text: str, character: str, user: str) -> str:
    """`{{char}}` and `{{user}}` (any case) replaced by the character's and user's names."""

    def name(match: re.Match[str]) -> str:
        which = (match.group(1) or match.group(2)).lower()
        return character if which in ("char", "bot") else user

    return _MACROS.sub(name, text)


def greetings(character: Character, user: str = USER_NAME) -> list[str]:
    """The character's greeting and its alternates, names filled in ([] without one)."""
    if not character.greeting:
        return []
    # An imported card's alternates may hold empty ones (kept for its export): not offered.
    texts = [character.greeting, *(g for g in character.alternate_greetings or [] if g)]
    return [fill_names(t, character.name, user) for t in texts]


def _example_dialogue(text: str) -> str:
    # Cards separate exchanges with <START>; a blank line reads the same to a model.
    return re.sub(r"^\s*<START>\s*$", "", text, flags=re.IGNORECASE | re.MULTILINE).strip()


@dataclass(frozen=True)
class Prompt:
    """What the template makes of a turn: the system message that opens the prompt, the
    instruction that follows the user's last message (empty: none), and what the
    character's lorebook added, as `verbose` reports it (None: it has no book)."""

    system: str
    post_history: str
    lore: dict[str, Any] | None = None


class PromptTemplate:
    """The operator-overridable template. It may define the blocks `system` and
    `post_history`; a template without blocks is the system message alone."""

    def __init__(self, source: str = DEFAULT_TEMPLATE) -> None:
        self.template = _env.from_string(source)

    @classmethod
    def from_file(cls, path: Path | None) -> PromptTemplate:
        return cls(path.read_text()) if path else cls()

    def render(
        self,
        character: Character | None,
        system_prompt: str,
        user: str = USER_NAME,
        lore: Lore | None = None,
    ) -> Prompt:
        """`lore`: what the character's lorebook adds (`conversation/lore.py`), as
        `lore_before` and `lore_after` for the template."""
        context: dict[str, object] = {"system_prompt": system_prompt, "user": user, "char": ""}
        context["lore_before"] = lore.before if lore else ""
        context["lore_after"] = lore.after if lore else ""
        report = lore.report if lore else None
        if character is not None:
            texts = {k: fill_names(getattr(character, k) or "", character.name, user)
                     for k in CHARACTER_TEXTS}  # fmt: skip
            texts["example_dialogue"] = _example_dialogue(texts["example_dialogue"])
            context["character"] = {"name": character.name, "age": character.age, **texts}
            context["char"] = character.name
        else:
            context["character"] = None
        blocks = self.template.blocks
        if "system" not in blocks:
            return Prompt(self.template.render(context).strip(), "", report)
        system, post = self._block("system", context), self._block("post_history", context)
        return Prompt(system, post, report)

    def system_message(self, character: Character | None, system_prompt: str) -> str:
        return self.render(character, system_prompt).system

    def _block(self, name: str, context: dict[str, object]) -> str:
        block = self.template.blocks.get(name)
        if block is None:
            return ""
        return "".join(block(self.template.new_context(context))).strip()


@dataclass(frozen=True)
class FittedHistory:
    messages: list[ChatMessage]  # oldest first
    kept: int
    dropped: int
    prompt_tokens: int  # estimated: system + history + new message + template overhead
    fixed_counts: list[int] = field(default_factory=list)  # of `fixed`, in order
    # Messages of the history counted by this fit (none stored, or stored for another
    # model): message id -> tokens, for the turn to store.
    counted: dict[str, int] = field(default_factory=dict)


class HistoryMessage(Protocol):
    """What fitting a history reads of a message (a row or an entity)."""

    @property
    def id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def prompt_tokens(self) -> int | None: ...
    @property
    def prompt_tokens_model(self) -> str | None: ...


LoadBatch = Callable[[int, int], Awaitable[Sequence[HistoryMessage]]]


async def fit_history(
    engine: LLMEngine,
    budget: int,
    fixed: Sequence[str],
    total_before: int,
    load_newest_before: LoadBatch,
    before_seq: int,
    model_id: str | None = None,
) -> FittedHistory:
    """Keep the newest messages whose tokens, with `fixed` texts, fit in `budget`.

    `load_newest_before(seq, n)` returns up to n messages older than seq, newest first.
    A message's count stored for `model_id` is used as it is; the others are counted (in
    one call per batch) and returned in `counted`, so that a history is tokenized once.
    """
    fixed_counts = await engine.count_tokens(list(fixed))
    used = sum(fixed_counts) + engine.message_overhead * len(fixed) + engine.prompt_overhead
    kept: list[HistoryMessage] = []
    counted: dict[str, int] = {}
    cursor = before_seq
    size = HISTORY_BATCH
    full = False
    while not full:
        batch = await load_newest_before(cursor, size)
        if not batch:
            break
        for message, count in zip(batch, await _counts(engine, batch, model_id, counted),
                                  strict=True):  # fmt: skip
            cost = count + engine.message_overhead
            if used + cost > budget:
                full = True
                break
            used += cost
            kept.append(message)
        cursor = batch[-1].seq
        if len(batch) < size:
            break
        size = min(size * HISTORY_BATCH_GROWTH, HISTORY_BATCH_MAX)
    kept.reverse()
    return FittedHistory(
        messages=merge_consecutive([ChatMessage(ROLES[m.role], m.content) for m in kept]),
        kept=len(kept),
        dropped=total_before - len(kept),
        prompt_tokens=used,
        fixed_counts=fixed_counts,
        counted=counted,
    )


async def _counts(
    engine: LLMEngine,
    batch: Sequence[HistoryMessage],
    model_id: str | None,
    counted: dict[str, int],
) -> list[int]:
    """Each message's tokens: stored ones as they are, the rest counted now (into
    `counted`)."""
    stored = [
        m.prompt_tokens if model_id and m.prompt_tokens_model == model_id else None for m in batch
    ]
    missing = [m for m, n in zip(batch, stored, strict=True) if n is None]
    if missing:
        fresh = await engine.count_tokens([m.content for m in missing])
        counted.update({m.id: n for m, n in zip(missing, fresh, strict=True)})
    return [n if n is not None else counted[m.id] for m, n in zip(batch, stored, strict=True)]


def merge_consecutive(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The history as the model should see it: empty messages (an image's) left out, and
    messages of one role in a row (a question that got no answer, then the next) joined
    into one, so that roles alternate as chat templates expect."""
    merged: list[ChatMessage] = []
    for message in messages:
        if not message.content:
            continue
        if merged and merged[-1].role == message.role:
            merged[-1] = ChatMessage(message.role, f"{merged[-1].content}\n\n{message.content}")
        else:
            merged.append(message)
    return merged
