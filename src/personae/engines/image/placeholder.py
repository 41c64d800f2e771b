"""Avatars drawn from the prompt, without diffusion: what a fresh install generates until
an operator registers a real model. The same prompt, seed and size give the same image."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random

from PIL import Image, ImageDraw

from personae.engines.image.base import ImageDefaults, ImageEngine, ImageParams


class PlaceholderConfig(ImageDefaults):
    pass


def _colour(rng: random.Random, light: bool) -> tuple[int, int, int]:
    low, high = (150, 255) if light else (20, 120)
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def draw(params: ImageParams) -> bytes:
    """A bust on a two-tone background, its colours and proportions taken from a hash of
    the prompt and seed."""
    digest = hashlib.sha256(f"{params.seed}:{params.prompt}".encode()).digest()
    rng = random.Random(digest)
    w, h = params.width, params.height
    top, band = _colour(rng, light=True), _colour(rng, light=True)
    image = Image.new("RGB", (w, h), top)
    pen = ImageDraw.Draw(image)
    for y in range(h // 2, h):  # a vertical blend over the lower half
        t = (y - h // 2) / max(1, h // 2)
        blend = tuple(int(a + (b - a) * t) for a, b in zip(top, band, strict=True))
        pen.line([(0, y), (w, y)], fill=blend)
    skin, cloth = _colour(rng, light=True), _colour(rng, light=False)
    cx, unit = w / 2, min(w, h)
    head = unit * rng.uniform(0.16, 0.22)
    head_y = h * rng.uniform(0.36, 0.42)
    shoulders = unit * rng.uniform(0.32, 0.42)
    pen.ellipse([cx - shoulders, h * 0.72, cx + shoulders, h * 1.3], fill=cloth)
    pen.rectangle([cx - head * 0.35, head_y, cx + head * 0.35, h * 0.76], fill=skin)
    pen.ellipse([cx - head, head_y - head * 1.15, cx + head, head_y + head * 1.15], fill=skin)
    hair = _colour(rng, light=False)
    pen.chord(
        [cx - head * 1.05, head_y - head * 1.25, cx + head * 1.05, head_y + head * 0.9],
        180,
        360,
        fill=hair,
    )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()


class PlaceholderEngine(ImageEngine):
    placeholder = True

    def __init__(self, config: PlaceholderConfig) -> None:
        self.config = config

    async def generate(self, params: ImageParams) -> bytes:
        return await asyncio.to_thread(draw, params)
