"""The `personae` command: `serve`, the operator's commands, and `chat`.

A `personae[chat]` install has no server: `personae` then offers `chat` alone.
"""

from __future__ import annotations

import importlib.util

import typer

from personae.cli.chat import chat

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def personae() -> None:
    """Personae: AI characters behind a REST API."""
    # A callback keeps `personae chat` a subcommand where it is the only one.


# The server's commands where the server is installed (its web framework is the marker);
# anything else failing to import is a bug, and is left to raise.
if importlib.util.find_spec("fastapi") is not None:
    from personae.cli.server import add_server_commands

    add_server_commands(app)
app.command()(chat)
