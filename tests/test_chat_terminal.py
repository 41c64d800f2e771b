"""`personae chat` driven through a pseudo-terminal (pexpect), as a person types into it,
against a live server."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator

import pexpect
import pytest

from conftest import Live
from personae.client import Personae
from personae.client.types import Character

PROMPT = "You: "


@pytest.fixture
def api(live: Live) -> Iterator[Personae]:
    with Personae(api_key=live.key(), base_url=live.base) as client:
        yield client


@pytest.fixture
def brine(api: Personae) -> Character:
    return api.characters.create(
        name="Captain Brine", description="A salty sea captain", personality="Gruff",
        background="Forty years at sea", greeting="Ahoy, {{user}}!",
    )  # fmt: skip


def spawn(live: Live, api: Personae, *args: str) -> pexpect.spawn:
    env = os.environ | {"PERSONAE_API_KEY": api.api_key, "TERM": "dumb"}
    env.pop("PERSONAE_BASE_URL", None)
    command = [*args, "--base-url", live.base, "--max-tokens", "16"]
    return pexpect.spawn(
        sys.executable, ["-m", "personae", "chat", *command],
        env=env, encoding="utf-8", timeout=120, dimensions=(40, 160),
    )  # fmt: skip


def answer(chat: pexpect.spawn, name: str) -> str:
    """The character's streamed answer, up to the next prompt. The terminal shows a line
    break in the answer as CRLF (the pty's `onlcr`); the stored text has LF."""
    chat.expect_exact(f"{name}: ")
    chat.expect_exact(PROMPT)
    return str(chat.before).replace("\r\n", "\n").strip()


def test_a_streamed_three_turn_conversation_with_every_command(
    live: Live, api: Personae, brine: Character
) -> None:
    chat = spawn(live, api, "captain brine")  # found by name, any case
    chat.expect_exact("Chatting with Captain Brine.")
    chat.expect_exact(PROMPT)
    said = []
    for line in ("Who are you?", "Where is your ship?", "What do you fear?"):
        chat.sendline(line)
        said.append(answer(chat, "Captain Brine"))
    assert all(said)

    # What the terminal showed is what the server stored, turn by turn.
    conversations = api.chat.conversations.list(character_id=brine.id).data
    assert len(conversations) == 1
    assert conversations[0].message_count == 7
    stored = list(reversed(list(api.chat.messages.list(conversations[0].id))))
    assert [m.content for m in stored if m.is_character][1:] == said
    assert [m.content for m in stored if not m.is_character] == [
        "Who are you?", "Where is your ship?", "What do you fear?",
    ]  # fmt: skip

    chat.sendline("/history")
    chat.expect_exact("Captain Brine: Ahoy, User!")
    chat.expect_exact("You: What do you fear?")
    chat.expect_exact(PROMPT)

    chat.sendline("/regenerate")
    answer(chat, "Captain Brine")
    last = api.chat.messages.list(conversations[0].id, limit=1).data[0]
    assert last.is_character
    assert len(last.alternatives) == 2
    assert last.selected == 1

    chat.sendline("/image a ship in a storm")
    chat.expect(r"Image: (http\S+)")
    assert api.chat.messages.list(conversations[0].id, limit=1).data[0].image_url
    chat.expect_exact(PROMPT)

    chat.sendline("/sing")
    chat.expect_exact("Unknown command /sing.")
    chat.expect_exact(PROMPT)

    chat.sendline("/new")
    chat.expect_exact("A new conversation starts with your next message.")
    chat.expect_exact(PROMPT)
    chat.sendline("Ahoy again")
    answer(chat, "Captain Brine")
    assert len(api.chat.conversations.list(character_id=brine.id).data) == 2

    # An API error mid-chat is one line, and the chat goes on.
    api.characters.delete(brine.id)
    chat.sendline("Are you there?")
    chat.expect(r"Error: 404 not_found: [^\r\n]+\r\n")
    assert "Traceback" not in str(chat.before)
    chat.expect_exact(PROMPT)
    chat.sendline("/quit")
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def test_continuing_a_conversation_shows_its_history(
    live: Live, api: Personae, brine: Character
) -> None:
    first = api.chat.send(brine.id, "Remember the kraken?", max_tokens=8)
    chat = spawn(live, api, brine.id, "--conversation", first.conversation_id)
    chat.expect_exact("You: Remember the kraken?")
    chat.expect_exact(f"Captain Brine: {first.content}")
    chat.expect_exact(PROMPT)
    chat.sendline("Tell me again")
    answer(chat, "Captain Brine")
    assert api.chat.conversations.get(first.conversation_id).message_count == 5
    chat.sendeof()
    chat.expect(pexpect.EOF)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["char_missing"], r"Error: 404 not_found: No character 'char_missing'"),
        (["Nobody"], r"Error: No character named 'Nobody' among your own or your favorites"),
    ],
)
def test_a_character_that_cannot_be_found_is_one_line_and_status_1(
    live: Live, api: Personae, args: list[str], error: str
) -> None:
    chat = spawn(live, api, *args)
    chat.expect(pexpect.EOF)
    chat.close()
    output = str(chat.before).strip()
    assert re.match(error, output), output
    assert len(output.splitlines()) == 1, output
    assert chat.exitstatus == 1
