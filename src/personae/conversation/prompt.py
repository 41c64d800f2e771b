"""The system message, and the history that fits the model's context.

The system message is rendered from a Jinja template (sandboxed, since operators may
supply their own with `PERSONAE_PROMPT_TEMPLATE_FILE`). The history is read newest first
in batches and kept while it fits: a conversation of 10,000 messages costs the same as
one whose kept part is equal, because older batches are never read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from personae.engines.llm.base import ChatMessage, LLMEngine, Role
from personae.models import Character, Message

DEFAULT_TEMPLATE = """\
{%- if character -%}
You are {{ character.name }}. Stay in character: answer only as {{ character.name }}, \
in the first person, and never write the user's lines.
{%- if character.description %}
Description: {{ character.description }}
{%- endif %}
{%- if character.personality %}
Personality: {{ character.personality }}
{%- endif %}
{%- if character.background %}
Background: {{ character.background }}
{%- endif %}
{%- endif %}
{%- if system_prompt %}
{{ system_prompt }}
{%- endif %}
"""

# Turn markers of common chat templates and plain "User:" lines: where the model would
# start speaking for the user, generation stops.
STOP_SEQUENCES = ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "</s>", "\nUser:", "\nuser:")
ROLES: dict[str, Role] = {"user": "user", "agent": "assistant", "system": "system"}
HISTORY_BATCH = 64

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class PromptTemplate:
    def __init__(self, source: str = DEFAULT_TEMPLATE) -> None:
        self.template = _env.from_string(source)

    @classmethod
    def from_file(cls, path: Path | None) -> PromptTemplate:
        return cls(path.read_text()) if path else cls()

    def system_message(self, character: Character | None, system_prompt: str) -> str:
        return self.template.render(character=character, system_prompt=system_prompt).strip()


@dataclass(frozen=True)
class FittedHistory:
    messages: list[ChatMessage]  # oldest first
    kept: int
    dropped: int
    prompt_tokens: int  # estimated: system + history + new message + template overhead


LoadBatch = Callable[[int, int], Awaitable[Sequence[Message]]]


async def fit_history(
    engine: LLMEngine,
    budget: int,
    fixed: Sequence[str],
    total_before: int,
    load_newest_before: LoadBatch,
    before_seq: int,
) -> FittedHistory:
    """Keep the newest messages whose tokens, with `fixed` texts, fit in `budget`.

    `load_newest_before(seq, n)` returns up to n messages older than seq, newest first.
    """
    fixed_counts = await engine.count_tokens(list(fixed))
    used = sum(fixed_counts) + engine.message_overhead * len(fixed) + engine.prompt_overhead
    kept: list[Message] = []
    cursor = before_seq
    full = False
    while not full:
        batch = await load_newest_before(cursor, HISTORY_BATCH)
        if not batch:
            break
        counts = await engine.count_tokens([m.content for m in batch])
        for message, count in zip(batch, counts, strict=True):
            cost = count + engine.message_overhead
            if used + cost > budget:
                full = True
                break
            used += cost
            kept.append(message)
        cursor = batch[-1].seq
        if len(batch) < HISTORY_BATCH:
            break
    kept.reverse()
    return FittedHistory(
        messages=merge_consecutive([ChatMessage(ROLES[m.role], m.content) for m in kept]),
        kept=len(kept),
        dropped=total_before - len(kept),
        prompt_tokens=used,
    )


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
