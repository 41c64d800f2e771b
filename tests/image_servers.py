"""A local image server that speaks the real protocols of Automatic1111 / SD.Next
(`POST /sdapi/v1/txt2img`) and OpenAI (`POST /v1/images/generations`): it checks each
request as the real server would and answers with a real PNG of the requested size.

`script` steers it: answer 500 for the first `fail_first` requests, hang the first
`hang_first` ones for `hang_seconds`, or answer with `bad_body`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_servers import free_port, serving

A1111_AUTH = ("painter", "s3cret")
OPENAI_KEY = "sk-test-images"


def png_b64(width: int, height: int, seed: int) -> str:
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


@dataclass
class Script:
    fail_first: int = 0
    hang_first: int = 0
    hang_seconds: float = 60
    bad_body: Any = None


@dataclass
class ImageServer:
    base: str
    script: Script = field(default_factory=Script)
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def _scripted(self, body: dict[str, Any]) -> Response | None:
        self.requests.append(body)
        n = len(self.requests)
        if n <= self.script.hang_first:
            await asyncio.sleep(self.script.hang_seconds)
        if n <= self.script.fail_first:
            return JSONResponse({"error": "CUDA out of memory"}, status_code=500)
        if self.script.bad_body is not None:
            return JSONResponse(self.script.bad_body)
        return None

    async def txt2img(self, request: Request) -> Response:
        if (
            request.headers.get("authorization")
            != "Basic " + base64.b64encode(":".join(A1111_AUTH).encode()).decode()
        ):
            return JSONResponse({"detail": "Incorrect credentials"}, status_code=401)
        body = await request.json()
        # What the real API validates: a prompt, sizes and numbers of the right types.
        if not isinstance(body.get("prompt"), str):
            return JSONResponse({"detail": "prompt: field required"}, status_code=422)
        for name in ("width", "height", "steps", "seed"):
            if not isinstance(body.get(name), int):
                return JSONResponse({"detail": f"{name}: not an integer"}, status_code=422)
        if not isinstance(body.get("cfg_scale"), int | float):
            return JSONResponse({"detail": "cfg_scale: not a number"}, status_code=422)
        if scripted := await self._scripted(body):
            return scripted
        image = png_b64(body["width"], body["height"], body["seed"])
        return JSONResponse({"images": [image], "parameters": body, "info": "{}"})

    async def generations(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
            return JSONResponse(
                {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}},
                status_code=401,
            )
        body = await request.json()
        size = str(body.get("size", "1024x1024"))
        if not isinstance(body.get("prompt"), str) or "x" not in size or body.get("n", 1) != 1:
            return JSONResponse({"error": {"message": "invalid request"}}, status_code=400)
        if scripted := await self._scripted(body):
            return scripted
        width, height = (int(v) for v in size.split("x"))
        data = {"b64_json": png_b64(width, height, 7), "revised_prompt": body["prompt"]}
        return JSONResponse({"created": int(time.time()), "data": [data]})


@contextmanager
def image_server() -> Iterator[ImageServer]:
    port = free_port()
    server_state = ImageServer(f"http://127.0.0.1:{port}")
    app = Starlette(
        routes=[
            Route("/sdapi/v1/txt2img", server_state.txt2img, methods=["POST"]),
            Route("/v1/images/generations", server_state.generations, methods=["POST"]),
        ]
    )
    with serving(app, port):
        yield server_state
