"""The answer filter: labels, the user's lines and template tokens, piece by piece."""

from __future__ import annotations

import pytest

from personae.conversation.cleaning import TEMPLATE_TOKENS, AnswerFilter, user_markers

STOPS = TEMPLATE_TOKENS + user_markers("User")


def clean(name: str | None, pieces: list[str]) -> tuple[str, list[str]]:
    answer = AnswerFilter(name, STOPS)
    shown = [answer.feed(p) for p in pieces]
    shown.append(answer.finish())
    return "".join(shown), shown


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["Capt", "ain Br", "ine: Ahoy", " matey"], "Ahoy matey"),
        (["**Brine:**", " Arr"], "Arr"),
        (["  captain: ", "Aye"], "Aye"),
        (["Captain", " Brine is my name"], "Captain Brine is my name"),
        (["Ca", "ts are nice"], "Cats are nice"),
        (["Brine"], "Brine"),
        (["Hello <", "3 you"], "Hello <3 you"),
        (["Aye.", "<|im", "_end|>", "more"], "Aye."),
        (["Aye.\nUs", "er: I say more"], "Aye."),
        (["Aye.\nYou: no"], "Aye."),
        (["Aye. User: asks"], "Aye. User: asks"),  # only at a line's start
        (["Aye</s>"], "Aye"),
    ],
)
def test_answers_are_cleaned(pieces: list[str], expected: str) -> None:
    assert clean("Captain Brine", pieces)[0] == expected


def test_only_a_possible_marker_is_held_back() -> None:
    _, shown = clean("Captain Brine", ["Well, ", "ahoy <", "|im_start|>user"])
    assert shown[:2] == ["Well, ", "ahoy "]  # "<" might begin a token: held, then dropped
    assert "".join(shown) == "Well, ahoy "


def test_without_a_character_nothing_is_held_for_a_label() -> None:
    assert clean(None, ["Vexa: hi"])[1][0] == "Vexa: hi"


def test_after_a_stop_nothing_more_is_shown() -> None:
    answer = AnswerFilter("Vexa", STOPS)
    assert answer.feed("Go.<|im_end|>") == "Go."
    assert answer.stopped
    assert answer.feed("more") == ""
    assert answer.finish() == ""
