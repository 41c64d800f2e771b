"""A lorebook at prompt time: which entries of the character's book a turn's recent
messages call up, and the text they add to the system message.

An entry fires when one of its keys appears in the last `scan_depth` messages (the new one
included), or always when it is `constant`; a `selective` entry also needs its secondary
keys to agree (its selective logic). With `recursive_scanning`, what fired is scanned in
turn, at most `max_recursion` times. What fired is then fitted to a token budget by
priority (the lowest goes first) and inserted by insertion order, `before_char` entries
before the character's description, `after_char` ones after its definitions. Matching runs
in a thread: a book holds up to 256 entries, each with dozens of keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from personae.character.lorebook import Lorebook, LoreEntry, key_pattern

# Recent message texts, oldest first, the new message last: the last `n` of them.
RecentTexts = Callable[[int], Awaitable[Sequence[str]]]
CountTokens = Callable[[list[str]], Awaitable[list[int]]]


@dataclass(frozen=True)
class LoreSettings:
    """The server's defaults (`PERSONAE_LOREBOOK_*`); a book's own `scan_depth` replaces
    the depth, its `token_budget` may only lower the budget."""

    scan_depth: int = 4
    token_budget: int = 512
    max_recursion: int = 2


@dataclass(frozen=True)
class Lore:
    """The text a book adds to a turn's prompt, and what `verbose` says about it."""

    before: str
    after: str
    report: dict[str, Any]


@dataclass(frozen=True)
class _Fired:
    index: int
    entry: LoreEntry
    reason: str


def _search(entry: LoreEntry, keys: Sequence[str], texts: Sequence[tuple[str, str]]) -> str | None:
    """A key found and where, newest text first, as `verbose` says it; None if none is."""
    patterns = [(key, key_pattern(key, bool(entry.case_sensitive), bool(entry.use_regex)))
                for key in keys]  # fmt: skip
    for where, text in reversed(texts):
        for key, pattern in patterns:
            if pattern.search(text):
                return f"key {key!r} in {where}"
    return None


def _secondary_agree(entry: LoreEntry, texts: Sequence[tuple[str, str]]) -> bool:
    keys = entry.secondary_keys or []
    if not entry.selective or not keys:
        return True
    found = [_search(entry, [key], texts) is not None for key in keys]
    match entry.logic:
        case "and_any":
            return any(found)
        case "and_all":
            return all(found)
        case "not_any":
            return not any(found)
        case "not_all":
            return not all(found)


def match_entries(book: Lorebook, messages: Sequence[str], max_recursion: int) -> list[_Fired]:
    """The entries that fire, in the order found, each with why."""
    fired: list[_Fired] = []
    done: set[int] = set()
    count = len(messages)
    texts = [
        ("the new message" if i == count - 1 else f"message {i + 1} of the last {count}", text)
        for i, text in enumerate(messages)
    ]
    scanned = list(texts)
    for index, entry in enumerate(book.entries):
        if entry.enabled and entry.constant:
            fired.append(_Fired(index, entry, "constant"))
            done.add(index)
    passes = 1 + (max_recursion if book.recursive_scanning else 0)
    for depth in range(passes):
        found: list[_Fired] = []
        for index, entry in enumerate(book.entries):
            if index in done or not entry.enabled:
                continue
            reason = _search(entry, entry.keys, texts)
            if reason is not None and _secondary_agree(entry, scanned):
                found.append(
                    _Fired(index, entry, reason + (f" (recursion {depth})" if depth else ""))
                )
                done.add(index)
        fired += found
        if not found:
            break
        # The next pass reads what this one added.
        texts = [(f"entry {f.entry.label or f.index!r}", f.entry.content) for f in found]
        scanned += texts
    return fired


def _priority(fired: _Fired) -> tuple[float, float, int]:
    return (-(fired.entry.priority or 0), fired.entry.insertion_order, fired.index)


async def select_lore(
    book: dict[str, Any],
    recent: RecentTexts,
    count_tokens: CountTokens,
    settings: LoreSettings,
    fill: Callable[[str], str],
) -> Lore:
    """What `book` adds to a turn. `fill` puts the names in for `{{char}}` and `{{user}}`."""
    try:
        parsed = Lorebook.model_validate(book)
    except ValidationError:  # stored before a cap was lowered: the turn goes on without it
        return Lore("", "", {"error": "the lorebook no longer passes its checks; not used"})
    depth = parsed.scan_depth if parsed.scan_depth is not None else settings.scan_depth
    budget = settings.token_budget
    if parsed.token_budget is not None:
        budget = min(budget, parsed.token_budget)
    messages = list(await recent(depth)) if depth else []
    fired = await asyncio.to_thread(match_entries, parsed, messages, settings.max_recursion)
    texts = [fill(f.entry.content) for f in fired]
    counts = await count_tokens(texts) if texts else []
    tokens = {f.index: (text, n) for f, text, n in zip(fired, texts, counts, strict=True)}
    kept: list[_Fired] = []
    skipped: list[dict[str, Any]] = []
    used = 0
    for f in sorted(fired, key=_priority):
        n = tokens[f.index][1]
        if used + n <= budget:
            kept.append(f)
            used += n
        else:
            skipped.append(_describe(f, n) | {"reason": f"{f.reason}, but over the token budget"})
    kept.sort(key=lambda f: (f.entry.insertion_order, f.index))
    before = [tokens[f.index][0] for f in kept if f.entry.position != "after_char"]
    after = [tokens[f.index][0] for f in kept if f.entry.position == "after_char"]
    report = {
        "scan_depth": depth,
        "token_budget": budget,
        "tokens": used,
        "fired": [_describe(f, tokens[f.index][1]) | {"reason": f.reason} for f in kept],
        "skipped": skipped,
    }
    return Lore("\n".join(t for t in before if t), "\n".join(t for t in after if t), report)


def _describe(fired: _Fired, tokens: int) -> dict[str, Any]:
    return {
        "entry": fired.index,
        "id": fired.entry.id,
        "name": fired.entry.label,
        "position": fired.entry.position or "before_char",
        "tokens": tokens,
    }
