"""`personae chat`: talk to a character from a terminal, through the Python client.

It needs only the client, typer and rich (`pip install 'personae[chat]'`), and speaks to
any Personae server over HTTP (`--base-url`, `PERSONAE_API_KEY`). Answers stream as they
are generated. Every API error is one line, and the chat goes on where it can.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from personae.client import Delta, Personae, PersonaeError, Stream
from personae.client.types import Character, ChatMessage

COMMANDS = (
    "/new starts a new conversation, /history shows this one, /regenerate answers the "
    "last message again, /image PROMPT makes an image here, /quit (or Ctrl-D) leaves"
)
HISTORY_LIMIT = 20

# Soft wrap: the terminal wraps long lines itself, and copied text keeps no inserted breaks.
console = Console(highlight=False, soft_wrap=True)


def _find(client: Personae, wanted: str) -> Character:
    """A character by id, or by name among one's own characters, then one's favorites."""
    if wanted.startswith("char_"):
        return client.characters.get(wanted)
    name = wanted.casefold()
    for agent in client.agents.list():
        if agent.name.casefold() == name:
            return client.characters.get(agent.id)
    for favorite in client.favorites.list():
        if favorite.name.casefold() == name:
            return client.characters.get(favorite.id)
    raise PersonaeError(
        f"No character named {wanted!r} among your own or your favorites: pass its id (char_…)"
    )


class Session:
    """One terminal chat: the character, the conversation so far, the last answer."""

    def __init__(
        self, client: Personae, character: Character, conversation_id: str | None, max_tokens: int
    ) -> None:
        self.client = client
        self.character = character
        self.conversation_id = conversation_id
        self.max_tokens = max_tokens
        self.last_answer: str | None = None

    def _speaker(self, is_character: bool) -> str:
        if is_character:
            return f"[bold magenta]{escape(self.character.name)}[/]"
        return "[bold cyan]You[/]"

    def _show(self, message: ChatMessage) -> None:
        text = message.content or (f"[image] {message.image_url}" if message.image_url else "")
        console.print(f"{self._speaker(message.is_character)}: {escape(text)}")

    def _stream(self, answer: Stream[ChatMessage]) -> None:
        console.print(f"{self._speaker(True)}: ", end="")
        with answer as stream:
            for event in stream:
                if isinstance(event, Delta):
                    console.print(escape(event.content), end="")
                    console.file.flush()
        console.print()
        message = stream.message
        if message is not None:
            self.conversation_id = message.conversation_id
            self.last_answer = message.id

    def say(self, text: str) -> None:
        """Sends `text` and streams the answer."""
        self._stream(
            self.client.chat.send(
                self.character.id, text, self.conversation_id, stream=True,
                max_tokens=self.max_tokens,
            )
        )  # fmt: skip

    def regenerate(self) -> None:
        """Answers the last message again."""
        if self.conversation_id is None or self.last_answer is None:
            console.print("[yellow]Nothing to regenerate yet.[/]")
            return
        self._stream(
            self.client.chat.messages.regenerate(
                self.conversation_id, self.last_answer, stream=True, max_tokens=self.max_tokens
            )
        )

    def history(self) -> None:
        """The conversation's last messages, oldest first."""
        if self.conversation_id is None:
            console.print("[yellow]No conversation yet: say something.[/]")
            return
        page = self.client.chat.messages.list(self.conversation_id, limit=HISTORY_LIMIT)
        for message in reversed(page.data):
            self._show(message)
        agent = next((m for m in page.data if m.is_character and m.content), None)
        self.last_answer = agent.id if agent else self.last_answer

    def image(self, prompt: str) -> None:
        """Generates an image, posted in the conversation when there is one."""
        if not prompt:
            console.print("[yellow]Usage: /image PROMPT[/]")
            return
        with console.status("Making the image…"):
            if self.conversation_id:
                image = self.client.images.generate(prompt, conversation_id=self.conversation_id)
            else:
                image = self.client.images.generate(prompt)
        if image.status == "completed":
            console.print(f"[green]Image:[/] {image.url}")
        else:
            console.print(f"[red]Image {image.status}:[/] {escape(image.error or '')}")

    def handle(self, line: str) -> bool:
        """Acts on one line typed; False when the chat should end."""
        command, _, rest = line.partition(" ")
        if command in ("/quit", "/exit"):
            return False
        if command == "/new":
            self.conversation_id = self.last_answer = None
            console.print("[green]A new conversation starts with your next message.[/]")
        elif command == "/history":
            self.history()
        elif command == "/regenerate":
            self.regenerate()
        elif command == "/image":
            self.image(rest.strip())
        elif command.startswith("/"):
            console.print(f"[yellow]Unknown command {escape(command)}.[/] {COMMANDS}")
        else:
            self.say(line)
        return True


def _error(exc: PersonaeError) -> None:
    console.print(f"[red]Error:[/] {escape(str(exc))}")


def chat(
    character: Annotated[str, typer.Argument(help="A character's id (char_…) or name.")],
    conversation: Annotated[
        str | None, typer.Option("--conversation", help="Continue this conversation.")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(envvar="PERSONAE_BASE_URL", help="The server (default 127.0.0.1:8000)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="PERSONAE_API_KEY", help="Your API key.")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=4096, help="Longest answer.")] = 256,
) -> None:
    """Chat with a character in the terminal, against any Personae server."""
    try:
        client = Personae(api_key=api_key, base_url=base_url)
        found = _find(client, character)
        session = Session(client, found, conversation, max_tokens)
        if conversation:
            session.history()
    except PersonaeError as exc:
        _error(exc)
        raise typer.Exit(1) from exc
    console.print(f"Chatting with [bold magenta]{escape(found.name)}[/]. {COMMANDS}.")
    while True:
        try:
            line = console.input("[bold cyan]You[/]: ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if not line:
            continue
        try:
            if not session.handle(line):
                break
        except PersonaeError as exc:
            _error(exc)
        except KeyboardInterrupt:
            console.print("\n[yellow](interrupted)[/]")
    client.close()
