"""llama.cpp's own `llama-server` as a supervised child process: started, watched, restarted.

The embedded model does not run inside the API process: a native crash there (a CPU
feature the build assumed, a bug in a kernel) would take every request down with it. It
runs in `llama-server`, which brings what a serving engine needs (continuous batching of
parallel sequences, prompt-cache reuse between the turns of one conversation, its own
metrics) and which we drive through its OpenAI-compatible API.

The process listens on a Unix socket in a private (0700) temporary folder, so nothing else
on the machine can reach it. On Linux the kernel kills it when the process that started it
dies (`PR_SET_PDEATHSIG`), so it never outlives the API process, even one killed with
SIGKILL; llama-server itself carries on when its parent goes away. When it dies, every
request in flight fails (the engine maps that to 503), and the supervisor starts it again
after a backoff that grows while restarts keep failing and resets once the engine has
stayed up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from personae.errors import EngineUnavailable

log = logging.getLogger("personae")

#: seconds before restart n (the last repeats); reset after STABLE_SECONDS up
BACKOFF = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_SECONDS = 30.0
POLL_SECONDS = 0.05


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a function to run in the child between fork and exec that asks the kernel
    to SIGKILL it when its parent dies (elsewhere: None). It only calls prctl, resolved
    before the fork, and exits if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arm


class EngineState(StrEnum):
    STARTING = "starting"
    UP = "up"
    DOWN = "down"  # died; a restart is scheduled
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServerCommand:
    """What to run: one GGUF, its context per sequence, sequences decoded together."""

    binary: Path
    model: Path
    n_ctx: int
    parallel: int
    threads: int | None = None
    cache_ram_mb: int = 1024

    def argv(self, socket: Path) -> list[str]:
        argv = [
            str(self.binary),
            "--model", str(self.model),
            "--alias", "personae",
            "--host", str(socket),  # a path ending in .sock: a Unix socket
            "--port", "1",  # ignored for a socket, but must be set
            "--ctx-size", str(self.n_ctx * self.parallel),
            "--parallel", str(self.parallel),
            "--no-kv-unified",  # each sequence gets its own n_ctx, whatever the others do
            "--cont-batching",
            "--cache-ram", str(self.cache_ram_mb),
            "--metrics",
            "--no-webui",
        ]  # fmt: skip
        if self.threads:
            argv += ["--threads", str(self.threads)]
        return argv


class LlamaServerProcess:
    """One `llama-server` for one model, kept running until `stop()`."""

    def __init__(self, command: ServerCommand, start_timeout: float = 120.0) -> None:
        self.command = command
        self.start_timeout = start_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="personae-llm-"))
        self.socket = self._dir / "engine.sock"
        self.state = EngineState.STOPPED
        self.restarts = 0
        self.last_exit: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._up = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=30)
        self._stopping = False
        self._failures = 0

    def transport(self) -> httpx.AsyncHTTPTransport:
        """An HTTP transport to the engine's socket (the path survives restarts). No
        connection is kept alive: llama-server closes idle ones on its own schedule, and a
        request sent on one it just closed fails with nothing received; a new connection
        to a local socket costs microseconds."""
        return httpx.AsyncHTTPTransport(
            uds=str(self.socket), limits=httpx.Limits(max_keepalive_connections=0)
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the engine and wait until it answers; EngineUnavailable if it cannot."""
        self._stopping = False
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise())

    async def wait_up(self, timeout: float) -> None:
        """Return once the engine is up; EngineUnavailable (503) after `timeout` seconds."""
        if self._up.is_set():
            return
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise EngineUnavailable(
                f"The embedded model's engine is {self.state.value}; try again shortly",
                details={"engine_state": self.state.value},
                headers={"Retry-After": "5"},
            ) from None

    async def _launch(self) -> None:
        self.state = EngineState.STARTING
        self.socket.unlink(missing_ok=True)
        argv = self.command.argv(self.socket)
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,  # held open: an engine never reads end-of-file
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C reaches the API, which stops the engine itself
            preexec_fn=_die_with_parent(),  # only prctl runs between fork and exec
        )
        self._drain = asyncio.create_task(self._read_log(self._proc))
        try:
            await self._wait_healthy(self._proc)
        except BaseException:
            await self._kill()
            raise
        self.state = EngineState.UP
        self._up.set()
        log.info("engine %s up (pid %s)", self.command.model.name, self._proc.pid)

    async def _wait_healthy(self, proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + self.start_timeout
        async with httpx.AsyncClient(transport=self.transport(), timeout=2) as client:
            while True:
                if proc.returncode is not None:
                    raise EngineUnavailable(
                        f"llama-server exited while loading {self.command.model.name} "
                        f"({describe_exit(proc.returncode)}): {self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("http://engine/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"llama-server did not load {self.command.model.name} within "
                        f"{self.start_timeout:.0f} s: {self.log_tail()}"
                    )
                await asyncio.sleep(POLL_SECONDS)

    async def _read_log(self, proc: asyncio.subprocess.Process) -> None:
        """Keep the end of the engine's log for error messages; never let the pipe fill."""
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._tail.append(text)
            log.debug("llama-server: %s", text)

    def log_tail(self, lines: int = 8) -> str:
        return " | ".join(list(self._tail)[-lines:]) or "(no output)"

    async def _supervise(self) -> None:
        while True:
            assert self._proc is not None
            started = time.monotonic()
            code = await self._proc.wait()
            if self._stopping:
                return
            self._up.clear()
            self.state = EngineState.DOWN
            self.last_exit = describe_exit(code)
            if time.monotonic() - started > STABLE_SECONDS:
                self._failures = 0
            delay = BACKOFF[min(self._failures, len(BACKOFF) - 1)]
            self._failures += 1
            log.error(
                "engine %s died (%s); restarting in %.1f s. Last output: %s",
                self.command.model.name, self.last_exit, delay, self.log_tail(3),
            )  # fmt: skip
            while not self._stopping:
                await asyncio.sleep(delay)
                try:
                    await self._launch()
                    self.restarts += 1
                    break
                except EngineUnavailable as exc:
                    self.state = EngineState.DOWN
                    delay = BACKOFF[min(self._failures, len(BACKOFF) - 1)]
                    self._failures += 1
                    log.error("engine restart failed (next try in %.1f s): %s", delay, exc)

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain

    async def stop(self) -> None:
        self._stopping = True
        self._up.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._kill()
        self.state = EngineState.STOPPED
        shutil.rmtree(self._dir, ignore_errors=True)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ""
        if name in ("SIGILL", "SIGSEGV", "SIGBUS"):
            hint = (
                " - a build for another CPU? Rebuild portable (`make install`), or set "
                "LLAMA_CMAKE_ARGS for this machine"
            )
        return f"killed by {name}{hint}"
    return f"exit status {code}"
