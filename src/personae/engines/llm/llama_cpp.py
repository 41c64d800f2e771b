"""The embedded engine: a GGUF model served by llama.cpp's `llama-server` in its own
supervised process (`llama_server.py`), driven through its OpenAI-compatible API.

What the API process keeps: the model's tokenizer (vocab only, for fitting histories to
the context), and the admission line (`admission.py`): `parallel` turns are decoded
together by the engine's continuous batching, `max_waiting` more wait, and the next gets
503 with `Retry-After` at once. A turn whose client goes away closes its HTTP stream to
the engine, which stops that sequence within a token.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from personae.engines.llm.admission import Admission
from personae.engines.llm.base import (
    ChatMessage,
    Chunk,
    EngineStatus,
    GenerationParams,
    LLMEngine,
    Sampling,
)
from personae.engines.llm.llama_server import EngineState, LlamaServerProcess, ServerCommand
from personae.engines.llm.native import resolve_path, server_binary
from personae.engines.llm.openai_compat import OpenAICompatConfig, OpenAICompatEngine
from personae.engines.llm.tokenizer import GGUFTokenizer
from personae.errors import EngineUnavailable

MAX_PARALLEL = 64


def default_parallel() -> int:
    """Sequences decoded together by default: aggregate throughput on a CPU keeps rising
    to about 8-16 sequences, while each adds its own KV cache (n_ctx tokens)."""
    return min(16, max(2, 4 * (os.cpu_count() or 1)))


class LlamaCppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description='A GGUF file, or "builtin:smollm2" for the bundled model.')
    n_ctx: int = Field(default=2048, ge=256, le=131_072, description="Context per sequence.")
    parallel: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARALLEL,
        description="Sequences decoded together; default PERSONAE_LLM_PARALLEL.",
    )
    n_threads: int | None = Field(default=None, ge=1, description="Default: every core.")
    sampling: Sampling = Field(default_factory=Sampling, description="The model's defaults.")


@dataclass(frozen=True)
class LlamaRuntime:
    """What the operator sets for every embedded model (`PERSONAE_LLM_*`, `PERSONAE_LLAMA_*`)."""

    server_binary: Path | None = None
    parallel: int = field(default_factory=default_parallel)
    max_waiting: int = 64
    start_timeout: float = 120.0
    restart_wait: float = 10.0  # how long a turn waits for an engine that is restarting
    request_timeout: float = 600.0
    cache_ram_mb: int = 1024


class LlamaCppEngine(LLMEngine):
    kind = "llama_cpp"
    message_overhead = 7  # <|im_start|>role\n ... <|im_end|>\n, and a margin

    def __init__(self, config: LlamaCppConfig, runtime: LlamaRuntime | None = None) -> None:
        self.config = config
        self.runtime = runtime or LlamaRuntime()
        self.path = resolve_path(config.path)
        self.context_window = config.n_ctx
        self.sampling = config.sampling
        self.parallel = config.parallel or self.runtime.parallel
        self.tokenizer = GGUFTokenizer(self.path)
        self.admission = Admission(self.parallel, self.runtime.max_waiting)
        self.process: LlamaServerProcess | None = None
        self._client: OpenAICompatEngine | None = None

    async def _load_tokenizer(self) -> None:
        if not self.path.is_file():
            raise EngineUnavailable(f"Model file not found: {self.path}")
        if not self.tokenizer.loaded:
            try:
                await self.tokenizer.load()
            except (ValueError, RuntimeError, OSError) as exc:
                raise EngineUnavailable(f"Could not read {self.path.name}: {exc}") from exc

    async def memory_need(self) -> int:
        """The weights (mapped from the file) and every sequence's KV cache."""
        await self._load_tokenizer()
        kv = self.tokenizer.kv_bytes_per_token() * self.config.n_ctx * self.parallel
        return self.path.stat().st_size + kv

    async def load(self) -> None:
        await self._load_tokenizer()
        command = ServerCommand(
            binary=server_binary(self.runtime.server_binary),
            model=self.path,
            n_ctx=self.config.n_ctx,
            parallel=self.parallel,
            threads=self.config.n_threads,
            cache_ram_mb=self.runtime.cache_ram_mb,
        )
        process = LlamaServerProcess(command, start_timeout=self.runtime.start_timeout)
        await process.start()
        self.process = process
        self._client = OpenAICompatEngine(
            OpenAICompatConfig(
                base_url="http://engine/v1",
                model="personae",
                timeout_seconds=self.runtime.request_timeout,
                context_window=self.config.n_ctx,
            ),
            transport=process.transport(),
            tokenizer=self.tokenizer,
            # A prompt partly reused from the cache is computed in other batch sizes, which
            # changes the last bits of the logits: a seeded request, asking for the same
            # answer to the same input, is computed whole.
            with_seed={"cache_prompt": False},
        )

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return await self.tokenizer.count(texts)

    def check_capacity(self) -> None:
        self.admission.check()

    @property
    def in_use(self) -> bool:
        return self.admission.in_use

    def status(self) -> EngineStatus:
        process = self.process
        state = process.state.value if process else EngineState.STOPPED.value
        details: dict[str, object] = {
            "parallel": self.parallel,
            "active": self.admission.active,
            "queued": self.admission.waiting,
            "restarts": process.restarts if process else 0,
        }
        if process and process.last_exit:
            details["last_exit"] = process.last_exit
        return EngineStatus(state, details)

    async def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        async with self.admission.slot():
            if self.process is None or self._client is None:
                raise EngineUnavailable("The embedded model is not loaded")
            await self.process.wait_up(self.runtime.restart_wait)
            try:
                async for chunk in self._client.stream(messages, params):
                    yield chunk
            except EngineUnavailable as exc:
                # The engine process died under this turn; the supervisor restarts it.
                raise EngineUnavailable(
                    f"The embedded model's engine stopped during the turn: {exc.message}",
                    headers={"Retry-After": "2"},
                ) from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.process is not None:
            await self.process.stop()
            self.process = None
        self.tokenizer.close()
