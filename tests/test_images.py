"""Images through the agents API, on the engines that run anywhere: the placeholder that a
fresh install registers, and the Automatic1111 protocol against a local server (for
failures, costs and retries). Jobs run on the in-process queue (memory://)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image as PILImage

from conftest import MakeAccount, create_account
from helpers import agents_error, bearer, characters_error, x_api_key
from image_servers import A1111_AUTH, ImageServer, image_server
from personae.account.service import AccountService, Credentials
from personae.model.service import ModelService, ModelType
from personae.state import AppState


@pytest.fixture
def a1111() -> Iterator[ImageServer]:
    with image_server() as server:
        yield server


async def add_sd_model(app: FastAPI, engine: str, settings: dict[str, Any], cost: str = "0") -> str:
    state: AppState = app.state.personae
    async with state.sessionmaker.begin() as session:
        model = await ModelService(session).register(
            ModelType.SD, f"{engine} test", engine, settings, cost=cost
        )
        return model.id


def a1111_settings(server: ImageServer, **more: Any) -> dict[str, Any]:
    return {"base_url": server.base, "api_auth": ":".join(A1111_AUTH), "width": 64,
            "height": 64, "steps": 4, **more}  # fmt: skip


async def placeholder_id(client: httpx.AsyncClient, creds: Credentials) -> str:
    response = await client.get("/api/v1/models?type=sd", headers=bearer(creds))
    assert response.status_code == 200, response.text
    [model] = response.json()
    assert model["placeholder"] is True
    assert "placeholder" in model["name"].lower()
    return str(model["id"])


async def fetch_png(client: httpx.AsyncClient, url: str) -> PILImage.Image:
    assert url.startswith("http://testserver/files/")
    response = await client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    return PILImage.open(io.BytesIO(response.content))


async def balance(app: FastAPI, creds: Credentials) -> Decimal:
    state: AppState = app.state.personae
    async with state.sessionmaker() as session:
        account = await AccountService(session).get(creds.account.id)
        return Decimal(account.balance_micros) / 1_000_000


async def test_a_fresh_install_gives_agents_avatars(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    sd = await placeholder_id(client, creds)
    body = {"name": "Ada", "appearance_prompt": "silver hair, green coat", "age": 35,
            "sd_model_id": sd}  # fmt: skip
    created = await client.post("/api/v1/agents", json=body, headers=bearer(creds))
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["appearance_prompt"] == "35 years old, silver hair, green coat"
    avatar = await fetch_png(client, agent["avatar_url"])
    assert avatar.size == (512, 512)
    # The same file through the characters API and on a later read.
    again = await client.get(f"/v1/characters/{agent['id']}", headers=x_api_key(creds))
    assert again.json()["image_url"] == agent["avatar_url"]
    read = await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))
    assert read.json()["avatar_url"] == agent["avatar_url"]
    # The avatar was drawn from the full appearance prompt, age first.
    images = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
    assert [i["prompt"] for i in images] == ["35 years old, silver hair, green coat"]
    # Without sd_model_id there is no avatar.
    plain = await client.post("/api/v1/agents", json={"name": "Bo"}, headers=bearer(creds))
    assert plain.json()["avatar_url"] is None


async def test_generate_wait_and_read_back(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    body = {"prompt": "a lighthouse at dusk", "width": 96, "height": 64, "seed": 42}
    response = await client.post("/api/v1/images", json=body, headers=bearer(creds))
    assert response.status_code == 201, response.text
    image = response.json()
    assert image["status"] == "completed"
    assert image["id"].startswith("img_")
    assert (image["prompt"], image["width"], image["height"], image["seed"]) == (
        "a lighthouse at dusk", 96, 64, 42,
    )  # fmt: skip
    first = await fetch_png(client, image["url"])
    assert first.size == (96, 64)
    got = await client.get(f"/api/v1/images/{image['id']}", headers=bearer(creds))
    assert got.json() == image
    # Deterministic per prompt and seed; another seed draws another image.
    same = (await client.post("/api/v1/images", json=body, headers=bearer(creds))).json()
    other = (
        await client.post("/api/v1/images", json={**body, "seed": 43}, headers=bearer(creds))
    ).json()
    pixels = [(await fetch_png(client, i["url"])).tobytes() for i in (image, same, other)]
    assert pixels[0] == pixels[1] != pixels[2]


async def test_async_returns_pending_then_the_image(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await client.post(
        "/api/v1/images", json={"prompt": "a fox", "async": True}, headers=bearer(creds)
    )
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending"
    assert pending["url"] is None
    image = await poll(client, creds, pending["id"], "completed")
    assert image["url"]
    assert image["completed_at"] >= image["created_at"]


async def poll(
    client: httpx.AsyncClient, creds: Credentials, image_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            got = await client.get(f"/api/v1/images/{image_id}", headers=bearer(creds))
            assert got.status_code == 200, got.text
            image: dict[str, Any] = got.json()
            if image["status"] == status:
                return image
            assert image["status"] in {"pending", "running"}, image
            await asyncio.sleep(0.05)


async def test_pagination_object(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds, other = await make_account(), await make_account()
    ids = []
    for n in range(5):
        body = {"prompt": f"picture {n}", "async": True, "width": 64, "height": 64}
        ids.append(
            (await client.post("/api/v1/images", json=body, headers=bearer(creds))).json()["id"]
        )
    await client.post("/api/v1/images", json={"prompt": "not yours"}, headers=bearer(other))
    first = (await client.get("/api/v1/images?page=1&page_size=2", headers=bearer(creds))).json()
    assert first["pagination"] == {"total_items": 5, "current_page": 1, "page_size": 2,
                                   "total_pages": 3, "next_page": 2, "prev_page": None}  # fmt: skip
    last = (await client.get("/api/v1/images?page=3&page_size=2", headers=bearer(creds))).json()
    assert last["pagination"]["next_page"] is None
    assert last["pagination"]["prev_page"] == 2
    listed = [i["id"] for i in first["data"]] + [i["id"] for i in last["data"]]
    assert listed == [ids[4], ids[3], ids[0]]  # newest first
    default = (await client.get("/api/v1/images", headers=bearer(creds))).json()
    assert default["pagination"]["page_size"] == 10
    assert len(default["data"]) == 5
    for query in ("page=0", "page_size=0", "page_size=101", "page=x"):
        agents_error(await client.get(f"/api/v1/images?{query}", headers=bearer(creds)), 400)


async def test_image_posted_in_conversation_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agent = (
        await client.post("/api/v1/agents", json={"name": "Ilse"}, headers=bearer(creds))
    ).json()
    conversation = (
        await client.post(
            "/api/v1/conversations",
            json={"agent_id": agent["id"], "messages": [{"role": "user", "content": "Draw!"}]},
            headers=bearer(creds),
        )
    ).json()
    body = {"prompt": "a sketch of a cat", "conversation_id": conversation["id"]}
    image = (await client.post("/api/v1/images", json=body, headers=bearer(creds))).json()
    assert image["status"] == "completed"
    assert image["conversation_id"] == conversation["id"]
    messages = (
        await client.get(
            f"/api/v1/conversations/{conversation['id']}/messages", headers=bearer(creds)
        )
    ).json()
    assert [(m["role"], m["content"]) for m in messages] == [("user", "Draw!"), ("agent", "")]
    assert messages[1]["image_url"] == image["url"]
    assert messages[1]["id"] == image["message_id"]
    listed = (
        await client.get(
            f"/v1/chat/conversations/{conversation['id']}/messages", headers=x_api_key(creds)
        )
    ).json()["data"]
    newest = listed[0]
    assert (newest["is_character"], newest["content"], newest["image_url"]) == (
        True, "", image["url"],
    )  # fmt: skip
    conv = (
        await client.get(f"/api/v1/conversations/{conversation['id']}", headers=bearer(creds))
    ).json()
    assert conv["message_count"] == 2


async def test_bad_requests_write_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds, other = await make_account(), await make_account()
    theirs = (await client.post("/api/v1/conversations", json={}, headers=bearer(other))).json()
    theirs_image = (
        await client.post("/api/v1/images", json={"prompt": "x"}, headers=bearer(other))
    ).json()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({}, 400, "prompt"),
        ({"prompt": "   "}, 400, "prompt"),
        ({"prompt": "x" * 2001}, 400, "prompt"),
        ({"prompt": "x", "sd_model_id": "model_nope"}, 400, "sd_model_id"),
        ({"prompt": "x", "width": 100}, 400, "width"),
        ({"prompt": "x", "height": 4096}, 400, "height"),
        ({"prompt": "x", "steps": 0}, 400, "steps"),
        ({"prompt": "x", "seed": -1}, 400, "seed"),
        ({"prompt": "x", "colour": "red"}, 400, "colour"),
        ({"prompt": "x", "conversation_id": theirs["id"]}, 404, "conversation"),
    ]
    for body, status, word in cases:
        message = agents_error(
            await client.post("/api/v1/images", json=body, headers=bearer(creds)), status
        )
        assert word in message.lower(), (body, message)
    agents_error(
        await client.get(f"/api/v1/images/{theirs_image['id']}", headers=bearer(creds)), 404
    )
    agents_error(await client.get("/api/v1/images/img_nope", headers=bearer(creds)), 404)
    listed = (await client.get("/api/v1/images", headers=bearer(creds))).json()
    assert listed["pagination"]["total_items"] == 0
    agents_error(await client.post("/api/v1/images", json={"prompt": "x"}), 401)


async def test_price_is_charged_and_402_runs_nothing(
    app: FastAPI, client: httpx.AsyncClient, a1111: ImageServer
) -> None:
    paid = await add_sd_model(app, "automatic1111", a1111_settings(a1111), cost="0.25")
    poor = await create_account(app, balance="0.10")
    body = {"prompt": "a mountain", "sd_model_id": paid}
    message = agents_error(
        await client.post("/api/v1/images", json=body, headers=bearer(poor)), 402
    )
    assert message == "Insufficient account balance"
    agent = {"name": "Vain", "sd_model_id": paid}
    agents_error(await client.post("/api/v1/agents", json=agent, headers=bearer(poor)), 402)
    assert (await client.get("/api/v1/agents", headers=bearer(poor))).json() == []
    listed = (await client.get("/api/v1/images", headers=bearer(poor))).json()
    assert listed["pagination"]["total_items"] == 0
    assert a1111.requests == []  # nothing ran
    assert await balance(app, poor) == Decimal("0.10")

    rich = await create_account(app, balance="1")
    response = await client.post("/api/v1/images", json=body, headers=bearer(rich))
    assert response.status_code == 201, response.text
    assert await balance(app, rich) == Decimal("0.75")
    assert a1111.requests[0]["prompt"] == "a mountain"


async def test_a_failed_job_is_visible_and_refunded(
    app: FastAPI, client: httpx.AsyncClient, a1111: ImageServer
) -> None:
    a1111.script.fail_first = 100
    model = await add_sd_model(app, "automatic1111", a1111_settings(a1111), cost="0.5")
    creds = await create_account(app, balance="1")
    body = {"prompt": "doomed", "sd_model_id": model}
    message = agents_error(
        await client.post("/api/v1/images", json=body, headers=bearer(creds)), 502
    )
    assert "answered 500" in message
    assert await balance(app, creds) == Decimal("1")
    [image] = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
    assert image["status"] == "failed"
    assert "CUDA out of memory" in image["error"]
    assert image["url"] is None
    # Async: accepted, then failed, never hung.
    accepted = await client.post(
        "/api/v1/images", json={**body, "async": True}, headers=bearer(creds)
    )
    assert accepted.status_code == 202
    failed = await poll(client, creds, accepted.json()["id"], "failed")
    assert "answered 500" in failed["error"]
    assert await balance(app, creds) == Decimal("1")


async def test_a_wait_that_runs_out_answers_202(
    app: FastAPI, client: httpx.AsyncClient, a1111: ImageServer
) -> None:
    # The wait runs out long after the job is claimed (even on a loaded machine: 0.3 s was
    # once too short there) and long before the engine answers.
    a1111.script.hang_first, a1111.script.hang_seconds = 1, 4
    app.state.personae.settings.image_wait_seconds = 1.5
    model = await add_sd_model(app, "automatic1111", a1111_settings(a1111))
    creds = await create_account(app)
    body = {"prompt": "slow", "sd_model_id": model}
    response = await client.post("/api/v1/images", json=body, headers=bearer(creds))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running"
    done = await poll(client, creds, response.json()["id"], "completed")
    assert done["url"]


async def test_an_agents_avatar_that_takes_longer_appears_later(
    app: FastAPI, client: httpx.AsyncClient, a1111: ImageServer
) -> None:
    a1111.script.hang_first, a1111.script.hang_seconds = 1, 1
    app.state.personae.settings.image_wait_seconds = 0.2
    model = await add_sd_model(app, "automatic1111", a1111_settings(a1111))
    creds = await create_account(app)
    created = await client.post(
        "/api/v1/agents", json={"name": "Late", "sd_model_id": model}, headers=bearer(creds)
    )
    assert created.status_code == 201, created.text
    assert created.json()["avatar_url"] is None
    [image] = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
    await poll(client, creds, image["id"], "completed")
    agent = (
        await client.get(f"/api/v1/agents/{created.json()['id']}", headers=bearer(creds))
    ).json()
    assert agent["avatar_url"] is not None
    await fetch_png(client, agent["avatar_url"])
    assert a1111.requests[0]["prompt"] == "portrait of Late"


async def test_models_list_shows_image_models(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount, a1111: ImageServer
) -> None:
    creds = await create_account(app, balance="1")
    await add_sd_model(app, "automatic1111", a1111_settings(a1111), cost="0.02")
    models = (await client.get("/api/v1/models?type=sd", headers=bearer(creds))).json()
    assert [(m["placeholder"], m["cost_per_image"]) for m in models] == [(True, 0), (False, 0.02)]
    # With a real model registered, it is the default.
    image = (
        await client.post("/api/v1/images", json={"prompt": "x"}, headers=bearer(creds))
    ).json()
    assert image["sd_model_id"] == models[1]["id"]


async def test_characters_api_error_shape_is_untouched(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    # The images endpoints belong to the agents API only.
    creds = await make_account()
    characters_error(await client.get("/v1/images", headers=x_api_key(creds)), 404, "not_found")
