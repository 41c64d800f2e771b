"""Stable Diffusion run in this process by Hugging Face diffusers, on CUDA when torch sees
a GPU and on the CPU otherwise.

`path` is a folder in the `save_pretrained` layout or a single `.safetensors` checkpoint.
A single file also needs `config`: a folder holding the pipeline's configs in the same
layout (the weights there are not read), because diffusers would otherwise fetch them from
the Hugging Face Hub, which a self-hosted install must never depend on. Nothing is ever
downloaded: every load runs with `local_files_only=True`.

torch and diffusers are an optional extra (`pip install 'personae[diffusers]'`); they are
imported when a diffusers model is first used, so a server without them starts.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from personae.engines.image.base import ImageDefaults, ImageEngine, ImageParams
from personae.errors import EngineFailed, EngineUnavailable


class DiffusersConfig(ImageDefaults):
    path: str = Field(description="A save_pretrained folder or a .safetensors file.")
    config: str | None = Field(
        default=None, description="For a single file: a folder with the pipeline's configs."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    pipeline: Literal["sd", "sdxl"] = Field(
        default="sd", description="For a single file: which pipeline the checkpoint is."
    )

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str) -> str:
        path = Path(value).expanduser()
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ValueError(f"{value} has no model_index.json (not a save_pretrained folder)")
        elif not path.is_file():
            raise ValueError(f"{value} does not exist")
        elif path.suffix not in {".safetensors", ".ckpt"}:
            raise ValueError(f"{value}: expected a .safetensors file or a folder")
        return str(path.resolve())


class DiffusersEngine(ImageEngine):
    def __init__(self, config: DiffusersConfig) -> None:
        self.config = config
        self._pipeline: Any = None
        self._device = "cpu"
        # One generation at a time per pipeline: diffusers pipelines are not thread-safe.
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        try:
            self._pipeline, self._device = await asyncio.to_thread(self._load)
        except ImportError as exc:
            raise EngineUnavailable(
                "The diffusers engine needs torch and diffusers: pip install 'personae[diffusers]'"
            ) from exc
        except (OSError, ValueError) as exc:
            raise EngineFailed(f"The diffusers model could not be loaded: {exc}") from exc

    def _load(self) -> tuple[Any, str]:
        import torch
        from diffusers import (
            AutoPipelineForText2Image,
            StableDiffusionPipeline,
            StableDiffusionXLPipeline,
        )

        cfg = self.config
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype_name = cfg.dtype
        if dtype_name == "auto":
            dtype_name = "float16" if device == "cuda" else "float32"
        dtype = getattr(torch, dtype_name)
        path = Path(cfg.path)
        if path.is_dir():
            pipe = AutoPipelineForText2Image.from_pretrained(  # type: ignore[no-untyped-call]
                path, dtype=dtype, local_files_only=True
            )
        else:
            if cfg.config is None:
                raise ValueError("a single-file checkpoint needs `config` (a folder of configs)")
            cls = StableDiffusionXLPipeline if cfg.pipeline == "sdxl" else StableDiffusionPipeline
            pipe = cls.from_single_file(path, config=cfg.config, dtype=dtype, local_files_only=True)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # operators moderate; the checker needs extra weights
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(device), device

    async def generate(self, params: ImageParams) -> bytes:
        async with self._lock:
            return await asyncio.to_thread(self._generate, params)

    def _generate(self, params: ImageParams) -> bytes:
        import torch

        generator = torch.Generator(device=self._device).manual_seed(params.seed)
        try:
            result = self._pipeline(
                prompt=params.prompt,
                negative_prompt=params.negative_prompt or None,
                width=params.width,
                height=params.height,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance,
                generator=generator,
            )
        except (RuntimeError, ValueError) as exc:  # out of memory, bad sizes for the model
            raise EngineFailed(f"The diffusers pipeline failed: {exc}") from exc
        out = io.BytesIO()
        result.images[0].save(out, "PNG")
        return out.getvalue()

    async def close(self) -> None:
        self._pipeline = None
