"""Any OpenAI-compatible chat server: vLLM, llama.cpp's server, Ollama, TGI, OpenAI.

Streams `/chat/completions` over httpx. Timeouts, connection errors and error statuses
become EngineTimeout (504), EngineUnavailable (503) and EngineFailed (502). Token counts
use a GGUF tokenizer when `tokenizer_path` names one that matches the served model, and
otherwise an estimate of one token per 3 characters (deliberately high, so that the
history fitted to the context never overflows it).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from personae.engines.llm.base import (
    ChatMessage,
    Chunk,
    Delta,
    Finish,
    GenerationParams,
    LLMEngine,
    Sampling,
)
from personae.engines.llm.native import resolve_path
from personae.engines.llm.tokenizer import GGUFTokenizer
from personae.errors import EngineFailed, EngineTimeout, EngineUnavailable

CHARS_PER_TOKEN_ESTIMATE = 3


class OpenAICompatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(pattern=r"^https?://", description="e.g. http://vllm:8000/v1")
    model: str = Field(min_length=1, description="The model name the server knows.")
    api_key: str | None = None
    timeout_seconds: float = Field(default=120, gt=0)
    context_window: int = Field(default=4096, ge=256)
    tokenizer_path: str | None = Field(default=None, description="A GGUF with the same tokenizer.")
    sampling: Sampling = Field(default_factory=Sampling, description="The model's defaults.")


class OpenAICompatEngine(LLMEngine):
    kind = "openai"

    def __init__(
        self,
        config: OpenAICompatConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        tokenizer: GGUFTokenizer | None = None,
        with_seed: dict[str, Any] | None = None,
    ) -> None:
        """`transport` and `tokenizer` let the embedded engine reuse this client for the
        llama-server it supervises (a Unix socket, and the tokenizer it already holds);
        `with_seed` are more fields sent with requests that carry a seed."""
        self.with_seed = with_seed or {}
        self.config = config
        self.context_window = config.context_window
        self.sampling = config.sampling
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.timeout_seconds, connect=10),
            transport=transport,
        )
        self.tokenizer = tokenizer
        self._owns_tokenizer = tokenizer is None

    async def load(self) -> None:
        if self.config.tokenizer_path and self.tokenizer is None:
            self.tokenizer = GGUFTokenizer(resolve_path(self.config.tokenizer_path))
            await self.tokenizer.load()

    async def count_tokens(self, texts: list[str]) -> list[int]:
        if self.tokenizer is not None:
            return await self.tokenizer.count(texts)
        return [math.ceil(len(t) / CHARS_PER_TOKEN_ESTIMATE) for t in texts]

    async def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            **sampling_body(params.sampling),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body |= {"seed": params.seed, **self.with_seed}
        usage: dict[str, int] | None = None
        reasoning: list[str] = []
        completion, reason = 0, "stop"
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    text = (await response.aread())[:500].decode(errors="replace")
                    raise EngineFailed(
                        f"The model engine answered {response.status_code}: {text}",
                        details={"engine_status": response.status_code},
                    )
                done = False
                # Read to the end even after `[DONE]`, as the openai package does: a response
                # left unread closes its connection, and the next turn would open another.
                async for line in response.aiter_lines():
                    if done or not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        done = True
                        continue
                    event = json.loads(data)
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if think := delta.get("reasoning_content") or delta.get("reasoning"):
                            reasoning.append(think)
                        if content := delta.get("content"):
                            completion += 1
                            yield Delta(content)
                        reason = choice.get("finish_reason") or reason
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"The model engine did not answer in time: {exc!r}") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise EngineUnavailable(f"The model engine could not be reached: {exc!r}") from exc
        except json.JSONDecodeError as exc:
            raise EngineFailed("The model engine sent a malformed event") from exc
        prompt = (usage or {}).get("prompt_tokens", 0)
        completion = (usage or {}).get("completion_tokens", completion)
        yield Finish(prompt, completion, reason, "".join(reasoning) or None)

    async def close(self) -> None:
        await self._client.aclose()
        if self.tokenizer is not None and self._owns_tokenizer:
            self.tokenizer.close()


def sampling_body(sampling: Sampling) -> dict[str, float | int]:
    """The request fields for these settings: only those set, so that a server which knows
    none of the extensions (OpenAI itself) gets none. `top_k`, `min_p` and the repetition
    penalty are extensions that llama.cpp's server, vLLM and Ollama read; llama.cpp calls
    the penalty `repeat_penalty`, vLLM and TGI `repetition_penalty`, so both are sent. The
    `dry_*` settings are llama.cpp's and koboldcpp's; vLLM ignores them."""
    body = sampling.given()
    if "repeat_penalty" in body:
        body["repetition_penalty"] = body["repeat_penalty"]
    return body
