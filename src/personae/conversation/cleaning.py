"""What a character says, cleaned as it streams: no turn of the user's, no label of its own
name in front, no chat-template tokens.

Engines are asked to stop at these markers too, but not every engine honours every stop
(a server may cap their number, a small model may emit a template token as text), so the
answer is filtered here, once, for every engine. The filter holds back only what could
still become a marker (a few characters), so streaming stays token by token.
"""

from __future__ import annotations

from collections.abc import Iterable

# Where a chat template's turn ends or the next begins: the answer ends there.
TEMPLATE_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|endoftext|>",
    "<|end|>",
    "<|user|>",
    "<|assistant|>",
    "</s>",
    "[INST]",
)
# Labels under which a model starts writing the user's lines.
USER_LABELS = ("User", "user", "You", "Human")


def user_markers(user_name: str | None) -> tuple[str, ...]:
    """Line starts that mean the model began speaking for the user."""
    names = [*USER_LABELS, *([user_name] if user_name else [])]
    return tuple(f"\n{name}:" for name in dict.fromkeys(names))


class AnswerFilter:
    """Feed the raw pieces in order; each call returns what is safe to show now."""

    def __init__(self, character_name: str | None, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        # The character's name, its first and last words ("Captain Brine", "Captain",
        # "Brine"), longest first.
        words = (character_name or "").split()
        names = {" ".join(words), words[0], words[-1]} if words else set()
        self._names = sorted(names, key=len, reverse=True)
        self._pending = ""
        self._started = not self._names
        self._after_label = False  # the space after a label is dropped too
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self._pending += text
        if not self._started and not self._strip_label(final=False):
            return ""
        return self._release(final=False)

    def finish(self) -> str:
        """What was held back, once the engine is done."""
        if self.stopped:
            return ""
        if not self._started:
            self._strip_label(final=True)
        return self._release(final=True)

    def _strip_label(self, *, final: bool) -> bool:
        """Drop a leading "Name:" (bold or not); False while it is too early to tell."""
        text = self._pending.lstrip()
        bare = text.lstrip("*_")
        for name in self._names:
            if bare[: len(name)].lower() == name.lower():
                rest = bare[len(name) :].lstrip("*_ \t")
                if rest.startswith(":"):
                    self._pending = rest[1:].lstrip("*_")
                    self._after_label = True
                    break
                if not rest and not final:
                    return False  # "Brine" so far: a label or the first word
            elif name.lower().startswith(bare.lower()) and not final:
                return False  # "Capt" so far
        self._started = True
        return True

    def _release(self, *, final: bool) -> str:
        if self._after_label:
            self._pending = self._pending.lstrip()
            self._after_label = not self._pending
        text = self._pending
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return text[:cut]
        keep = 0 if final else _longest_marker_prefix(text, self.stops)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]


def _longest_marker_prefix(text: str, markers: tuple[str, ...]) -> int:
    """The length of the longest end of `text` that begins some marker."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best
