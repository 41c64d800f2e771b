"""Each image engine against what it talks to: Automatic1111 and OpenAI-compatible image
servers (a local server speaking their protocols), and diffusers running a tiny real
Stable Diffusion pipeline saved to disk, registered with `personae models add`."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image as PILImage
from typer.testing import CliRunner

from conftest import MakeAccount, create_account
from helpers import agents_error, bearer
from image_servers import A1111_AUTH, OPENAI_KEY, ImageServer, image_server
from personae.cli.main import app as cli
from personae.engines.image.base import ImageParams
from personae.engines.image.registry import IMAGE_ENGINES
from personae.engines.image.remote import Automatic1111Engine, OpenAIImagesEngine
from personae.errors import EngineFailed, EngineTimeout, EngineUnavailable, InvalidRequest
from test_images import add_sd_model, fetch_png, poll
from tiny_sd import build_tiny_pipeline

PARAMS = ImageParams("a red door", "blurry", 64, 96, 4, 6.5, 1234)


@pytest.fixture
def server() -> Iterator[ImageServer]:
    with image_server() as s:
        yield s


async def build(engine: str, settings: dict[str, Any]) -> Any:
    return await IMAGE_ENGINES.build(engine, settings)


async def test_automatic1111_protocol(server: ImageServer) -> None:
    engine = await build("automatic1111", {"base_url": server.base, "api_auth": ":".join(A1111_AUTH),
                                           "sampler_name": "Euler a"})  # fmt: skip
    assert isinstance(engine, Automatic1111Engine)
    data = await engine.generate(PARAMS)
    assert PILImage.open(io.BytesIO(data)).size == (64, 96)
    sent = server.requests[0]
    assert {k: sent[k] for k in ("prompt", "negative_prompt", "width", "height", "steps",
                                 "cfg_scale", "seed", "sampler_name", "batch_size")} == {
        "prompt": "a red door", "negative_prompt": "blurry", "width": 64, "height": 96,
        "steps": 4, "cfg_scale": 6.5, "seed": 1234, "sampler_name": "Euler a", "batch_size": 1,
    }  # fmt: skip
    await engine.close()


async def test_openai_images_protocol(server: ImageServer) -> None:
    engine = await build("openai", {"base_url": server.base + "/v1", "model": "dall-e-2",
                                    "api_key": OPENAI_KEY})  # fmt: skip
    assert isinstance(engine, OpenAIImagesEngine)
    data = await engine.generate(PARAMS)
    assert PILImage.open(io.BytesIO(data)).size == (64, 96)
    assert server.requests[0] == {"model": "dall-e-2", "prompt": "a red door", "n": 1,
                                  "size": "64x96", "response_format": "b64_json"}  # fmt: skip
    plain = await build("openai", {"base_url": server.base + "/v1", "model": "gpt-image-1",
                                   "api_key": OPENAI_KEY, "response_format": None})  # fmt: skip
    await plain.generate(PARAMS)
    assert "response_format" not in server.requests[1]
    await engine.close()
    await plain.close()


@pytest.mark.parametrize("engine_name", ["automatic1111", "openai"])
async def test_remote_failures_are_mapped(server: ImageServer, engine_name: str) -> None:
    base = server.base + ("/v1" if engine_name == "openai" else "")
    good = {"base_url": base, **({"model": "m", "api_key": OPENAI_KEY} if engine_name == "openai"
                                 else {"api_auth": ":".join(A1111_AUTH)})}  # fmt: skip

    async def attempt(settings: dict[str, Any]) -> Exception:
        engine = await build(engine_name, settings)
        try:
            with pytest.raises((EngineFailed, EngineTimeout, EngineUnavailable)) as caught:
                await engine.generate(PARAMS)
            return caught.value
        finally:
            await engine.close()

    wrong_key = {"api_key": "sk-wrong"} if engine_name == "openai" else {"api_auth": "a:b"}
    assert "answered 401" in str(await attempt({**good, **wrong_key}))
    server.script.fail_first = len(server.requests) + 1
    assert "answered 500" in str(await attempt(good))
    server.script.bad_body = {"images": ["%%%not base64"], "data": [{"b64_json": "%%%"}]}
    assert "not base64" in str(await attempt(good))
    server.script.bad_body = {"nothing": True}
    assert "without image" in str(await attempt(good))
    server.script.bad_body = None
    server.script.hang_first, server.script.hang_seconds = len(server.requests) + 1, 3
    assert isinstance(await attempt({**good, "timeout_seconds": 0.3}), EngineTimeout)
    dead = {**good, "base_url": "http://127.0.0.1:9" + ("/v1" if engine_name == "openai" else "")}
    assert isinstance(await attempt(dead), EngineUnavailable)


async def test_remote_answer_size_is_capped(server: ImageServer) -> None:
    server.script.bad_body = {"images": ["A" * 40_000]}
    engine = await build("automatic1111", {"base_url": server.base, "max_response_bytes": 20_000,
                                           "api_auth": ":".join(A1111_AUTH)})  # fmt: skip
    with pytest.raises(EngineFailed, match="exceeds 20000 bytes"):
        await engine.generate(PARAMS)
    await engine.close()


@pytest.mark.parametrize(
    ("engine", "settings", "message"),
    [
        ("dalle", {}, "unknown image engine"),
        ("automatic1111", {}, "base_url"),
        ("automatic1111", {"base_url": "file:///etc"}, "base_url"),
        ("openai", {"base_url": "http://x/v1"}, "model"),
        ("placeholder", {"width": 100}, "width"),
        ("placeholder", {"steps": 0}, "steps"),
        ("diffusers", {"path": "/nowhere/model"}, "does not exist"),
        ("diffusers", {"path": "/tmp"}, "model_index.json"),
    ],
)
def test_settings_are_checked(engine: str, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        IMAGE_ENGINES.validate(engine, settings)


async def test_engine_output_that_is_not_an_image_fails_the_job(
    app: FastAPI, client: httpx.AsyncClient, server: ImageServer
) -> None:
    server.script.bad_body = {"images": [base64.b64encode(b"%PDF-1.4 not an image").decode()]}
    model = await add_sd_model(app, "automatic1111", {"base_url": server.base,
                                                      "api_auth": ":".join(A1111_AUTH)})  # fmt: skip
    creds = await create_account(app)
    body = {"prompt": "x", "sd_model_id": model}
    message = agents_error(
        await client.post("/api/v1/images", json=body, headers=bearer(creds)), 502
    )
    assert "generated" in message


async def test_openai_engine_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, server: ImageServer
) -> None:
    model = await add_sd_model(app, "openai", {"base_url": server.base + "/v1", "model": "m",
                                               "api_key": OPENAI_KEY})  # fmt: skip
    creds = await make_account()
    body = {"prompt": "a kite", "sd_model_id": model, "width": 256, "height": 128}
    image = (await client.post("/api/v1/images", json=body, headers=bearer(creds))).json()
    assert image["status"] == "completed", image
    assert (await fetch_png(client, image["url"])).size == (256, 128)


# diffusers: a real pipeline, tiny enough for a CPU test


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "pipeline")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_diffusers_generates_through_the_api(
    app: FastAPI,
    client: httpx.AsyncClient,
    tiny_pipeline: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Registered the way an operator does, with the CLI, against the server's database.
    settings = app.state.personae.settings
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("PERSONAE_DATABASE_URL", raising=False)
    # In a thread: the CLI runs its own event loop.
    result = await asyncio.to_thread(CliRunner().invoke, cli, [
        "models", "add", "--type", "sd", "--name", "Tiny SD", "--engine", "diffusers",
        "--path", str(tiny_pipeline), "--settings", '{"width": 64, "height": 64, "steps": 4}',
        "--cost-per-image", "0", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    model = json.loads(result.output)
    assert model["settings"]["device"] == "auto"

    creds = await create_account(app)
    body = {"prompt": "a tiny red house", "sd_model_id": model["id"], "seed": 7}
    response = await client.post("/api/v1/images", json=body, headers=bearer(creds))
    assert response.status_code == 201, response.text
    image = response.json()
    picture = await fetch_png(client, image["url"])
    assert picture.size == (64, 64)
    # A real diffusion: the same seed gives the same pixels, another seed others.
    again = (await client.post("/api/v1/images", json=body, headers=bearer(creds))).json()
    other = (
        await client.post("/api/v1/images", json={**body, "seed": 8}, headers=bearer(creds))
    ).json()
    pixels = [(await fetch_png(client, i["url"])).tobytes() for i in (image, again, other)]
    assert pixels[0] == pixels[1] != pixels[2]
    assert len(picture.getcolors(maxcolors=64 * 64) or []) > 100  # not a flat colour
    # Async and another size through the same loaded pipeline.
    body = {**body, "width": 96, "height": 64, "async": True}
    accepted = await client.post("/api/v1/images", json=body, headers=bearer(creds))
    done = await poll(client, creds, accepted.json()["id"], "completed")
    assert (await fetch_png(client, done["url"])).size == (96, 64)
