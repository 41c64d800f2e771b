"""A GGUF model's tokenizer alone (llama.cpp's `vocab_only` load: no weights, milliseconds)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any


class GGUFTokenizer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._vocab: Any = None
        self._lock = threading.Lock()

    async def load(self) -> None:
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

    def close(self) -> None:
        if self._vocab is not None:
            self._vocab.close()
            self._vocab = None
