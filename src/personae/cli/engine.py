"""`personae engine check`: prove that the llama.cpp build runs on this machine.

`make install` ends with it, so a build that cannot run here (made for another CPU, a
broken toolchain) stops the install with a message instead of killing the first chat.
Both halves run in child processes, so a native crash is reported, never suffered: the
tokenizer in a Python child (it is what the API process loads), and a generation through
the engine process the server would start (`llama-server`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Annotated

import typer

from personae.cli.common import console, err_console
from personae.config import Settings
from personae.engines.llm.base import ChatMessage, Delta, Finish, GenerationParams, Sampling
from personae.engines.llm.llama_cpp import LlamaCppConfig, LlamaCppEngine, LlamaRuntime
from personae.engines.llm.llama_server import describe_exit
from personae.engines.llm.native import build_dir
from personae.errors import PersonaeError

engine = typer.Typer(help="The embedded language-model engine.", no_args_is_help=True)

HOW_TO_FIX = (
    "The build of llama.cpp in {dir} cannot run on this machine. Rebuild it: `make clean "
    "install` builds the portable default (AVX2 on x86-64); on a CPU without AVX2 set "
    "LLAMA_CMAKE_ARGS='-DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF'; "
    "LLAMA_NATIVE=1 builds for this CPU alone. See docs/engines.md."
)

TOKENIZE = """
import sys
from personae.engines.llm.native import resolve_path
from personae.engines.llm.tokenizer import GGUFTokenizer
import asyncio
tokenizer = GGUFTokenizer(resolve_path(sys.argv[1]))
asyncio.run(tokenizer.load())
print(asyncio.run(tokenizer.count(["Hello, who are you?"]))[0])
"""


def _fail(message: str) -> None:
    err_console.print(f"[red]engine check failed:[/red] {message}")
    err_console.print(HOW_TO_FIX.format(dir=build_dir()))
    raise typer.Exit(1)


@engine.command()
def check(
    path: Annotated[str, typer.Option(help="A GGUF file, or builtin:smollm2.")] = "builtin:smollm2",
    tokens: Annotated[int, typer.Option(min=1, max=256, help="Tokens to generate.")] = 8,
) -> None:
    """Tokenize and generate a few tokens through the installed llama.cpp build."""
    info = build_dir() / "build-info.txt"
    described = " ".join(info.read_text().split("\n")[1:3]) if info.is_file() else "no build-info"
    console.print(f"llama.cpp build: {build_dir()} ({described})")

    child = subprocess.run(
        [sys.executable, "-c", TOKENIZE, path], capture_output=True, text=True, timeout=120
    )
    if child.returncode != 0:
        _fail(
            f"the tokenizer ({describe_exit(child.returncode)}): "
            f"{child.stderr.strip().splitlines()[-1:] or ''}"
        )
    console.print(f"  tokenizer: ok ({child.stdout.strip()} tokens for a test sentence)")

    try:
        text, count, load_s, rate = asyncio.run(_generate(path, tokens))
    except PersonaeError as exc:
        _fail(f"the engine process: {exc.message}")
    console.print(
        f"  engine: loaded in {load_s:.2f} s, generated {count} tokens at {rate:.0f} tokens/s: "
        f"{text!r}"
    )


async def _generate(path: str, tokens: int) -> tuple[str, int, float, float]:
    settings = Settings()
    runtime = LlamaRuntime(server_binary=settings.llama_server, parallel=1, start_timeout=60)
    llm = LlamaCppEngine(LlamaCppConfig(path=path, n_ctx=512), runtime)
    started = time.perf_counter()
    try:
        await llm.load()
        loaded = time.perf_counter()
        pieces: list[str] = []
        count = 0
        messages = [ChatMessage("user", "Say hello.")]
        async for chunk in llm.stream(
            messages, GenerationParams(max_tokens=tokens, sampling=Sampling(temperature=0))
        ):
            if isinstance(chunk, Delta):
                pieces.append(chunk.text)
            elif isinstance(chunk, Finish):
                count = chunk.completion_tokens
        finished = time.perf_counter()
    finally:
        await llm.close()
    if count == 0:
        raise PersonaeError("the engine generated no token")
    return "".join(pieces), count, loaded - started, count / max(finished - loaded, 1e-9)
