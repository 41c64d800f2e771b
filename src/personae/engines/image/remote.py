"""Image servers reached over HTTP: Automatic1111 / SD.Next (`/sdapi/v1/txt2img`) and any
OpenAI-compatible `images/generations` endpoint.

Both answer with base64 image data. Timeouts, connection errors and error statuses
become EngineTimeout (504), EngineUnavailable (503) and EngineFailed (502); a body larger
than `max_response_bytes` is refused rather than read into memory.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx
from pydantic import Field

from personae.engines.image.base import ImageDefaults, ImageEngine, ImageParams
from personae.errors import EngineFailed, EngineTimeout, EngineUnavailable

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class RemoteConfig(ImageDefaults):
    base_url: str = Field(pattern=r"^https?://", description="The server's base URL.")
    timeout_seconds: float = Field(default=300, gt=0)
    max_response_bytes: int = Field(default=MAX_RESPONSE_BYTES, ge=1024)


class Automatic1111Config(RemoteConfig):
    api_auth: str | None = Field(
        default=None, pattern=r"^[^:]+:.*$", description="user:password, as in --api-auth."
    )
    sampler_name: str | None = None


class OpenAIImagesConfig(RemoteConfig):
    model: str = Field(min_length=1, description="The model name the server knows.")
    api_key: str | None = None
    quality: str | None = None
    response_format: str | None = Field(
        default="b64_json", description="null for servers that reject it (gpt-image models)."
    )


class RemoteImageEngine(ImageEngine):
    path: str

    def __init__(self, config: RemoteConfig, **client: Any) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            timeout=httpx.Timeout(config.timeout_seconds, connect=10),
            follow_redirects=False,
            **client,
        )

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON to the engine's path and return the JSON answer."""
        try:
            async with self._client.stream("POST", self.path, json=body) as response:
                data = await self._read_capped(response)
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"The image engine did not answer in time: {exc!r}") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise EngineUnavailable(f"The image engine could not be reached: {exc!r}") from exc
        if response.status_code >= 400:
            text = data[:500].decode(errors="replace")
            raise EngineFailed(
                f"The image engine answered {response.status_code}: {text}",
                details={"engine_status": response.status_code},
            )
        try:
            answer = httpx.Response(200, content=data).json()
        except ValueError as exc:
            raise EngineFailed("The image engine answered with malformed JSON") from exc
        if not isinstance(answer, dict):
            raise EngineFailed("The image engine answered with unexpected JSON")
        return answer

    async def _read_capped(self, response: httpx.Response) -> bytes:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.config.max_response_bytes:
                raise EngineFailed(
                    f"The image engine's answer exceeds {self.config.max_response_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def decode(data: object) -> bytes:
        if not isinstance(data, str):
            raise EngineFailed("The image engine answered without image data")
        if data.startswith("data:"):  # some servers send a data URL
            data = data.partition(",")[2]
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EngineFailed("The image engine sent image data that is not base64") from exc

    async def close(self) -> None:
        await self._client.aclose()


class Automatic1111Engine(RemoteImageEngine):
    path = "/sdapi/v1/txt2img"

    def __init__(self, config: Automatic1111Config) -> None:
        auth = tuple(config.api_auth.split(":", 1)) if config.api_auth else None
        super().__init__(config, auth=auth)
        self.sampler_name = config.sampler_name

    async def generate(self, params: ImageParams) -> bytes:
        body: dict[str, Any] = {
            "prompt": params.prompt,
            "negative_prompt": params.negative_prompt,
            "width": params.width,
            "height": params.height,
            "steps": params.steps,
            "cfg_scale": params.guidance,
            "seed": params.seed,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }
        if self.sampler_name:
            body["sampler_name"] = self.sampler_name
        images = (await self.post(body)).get("images")
        if not isinstance(images, list) or not images:
            raise EngineFailed("The image engine answered without images")
        return self.decode(images[0])


class OpenAIImagesEngine(RemoteImageEngine):
    """`base_url` ends where `/images/generations` starts (e.g. `https://api.openai.com/v1`).
    The answer's `b64_json` is used; a server that only gives a `url` is not supported,
    because fetching an arbitrary URL from a worker is an SSRF risk."""

    path = "/images/generations"

    def __init__(self, config: OpenAIImagesConfig) -> None:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        super().__init__(config, headers=headers)
        self.model = config.model
        self.quality = config.quality
        self.response_format = config.response_format

    async def generate(self, params: ImageParams) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": params.prompt,
            "n": 1,
            "size": f"{params.width}x{params.height}",
        }
        if self.response_format:
            body["response_format"] = self.response_format
        if self.quality:
            body["quality"] = self.quality
        data = (await self.post(body)).get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise EngineFailed("The image engine answered without images")
        return self.decode(data[0].get("b64_json"))
