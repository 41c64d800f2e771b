"""A GGUF model's tokenizer alone (llama.cpp's `vocab_only` load: no weights, milliseconds).

It runs in the API process through llama-cpp-python, on the same llama.cpp build as the
engine process (`native.use_build_libraries`). Only tokenizing runs here: no weights are
loaded and nothing is decoded, so a kernel that would crash on this CPU never runs here.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from personae.engines.llm.native import use_build_libraries


class GGUFTokenizer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._vocab: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._vocab is not None

    async def load(self) -> None:
        use_build_libraries()
        from llama_cpp import Llama

        self._vocab = await asyncio.to_thread(
            Llama, model_path=str(self.path), vocab_only=True, verbose=False
        )

    async def count(self, texts: list[str]) -> list[int]:
        return await asyncio.to_thread(self._count, texts)

    def _count(self, texts: list[str]) -> list[int]:
        with self._lock:
            return [
                len(self._vocab.tokenize(t.encode(), add_bos=False, special=False)) for t in texts
            ]

    def kv_bytes_per_token(self) -> int:
        """Bytes of f16 KV cache one token of context takes, from the GGUF's metadata
        (0 if the metadata does not say)."""
        meta: dict[str, str] = self._vocab.metadata
        arch = meta.get("general.architecture", "llama")
        try:
            layers = int(meta[f"{arch}.block_count"])
            width = int(meta[f"{arch}.embedding_length"])
            heads = int(meta[f"{arch}.attention.head_count"])
            kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        except (KeyError, ValueError):
            return 0
        return 2 * layers * (width // heads) * kv_heads * 2  # K and V, 2 bytes each

    def close(self) -> None:
        if self._vocab is not None:
            self._vocab.close()
            self._vocab = None
