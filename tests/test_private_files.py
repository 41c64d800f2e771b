"""Files: a public character's avatar is a plain URL cached by anyone; every other file (a
private agent's avatar, generated images, images in conversations) is served only at the
signed, expiring URL the API gives to those who may see it, and an unsigned, tampered or
expired request gets what a missing file gets. Deleting an agent leaves no image record
pointing at a deleted file. Signing keys are generated once and rotate."""

from __future__ import annotations

import asyncio
import io
import stat
import time
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from PIL import Image
from pydantic import SecretStr

from conftest import MakeAccount, create_account, make_client, truncate
from helpers import bearer, characters_error, x_api_key
from personae.account.service import AccountService, Credentials
from personae.api.images import generate_avatar
from personae.app import create_app
from personae.character.service import CharacterService
from personae.config import Settings
from personae.image.service import ImageService
from personae.state import AppState
from personae.storage.signing import KEY_FILE

CHAR = {"name": "Vexa", "description": "A courier", "personality": "Calm", "background": "Docks"}
YEAR = "public, max-age=31536000, immutable"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def placeholder(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    [model] = (await client.get("/api/v1/models?type=sd", headers=headers)).json()
    return str(model["id"])


async def private_agent(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    sd = await placeholder(client, headers)
    body = {"name": "Ada", "appearance_prompt": "green coat", "sd_model_id": sd}
    created = await client.post("/api/v1/agents", json=body, headers=headers)
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    assert agent["visibility"] == "private"
    return agent


def path_of(url: str) -> str:
    """The request target of a file URL (the test client talks to http://testserver)."""
    assert url.startswith("http://testserver/files/"), url
    return url.removeprefix("http://testserver")


def key_of(url: str) -> str:
    return httpx.URL(url).path.removeprefix("/files/")


def signed_parts(url: str) -> tuple[str, int, str]:
    """(key, expires, signature) of a signed URL."""
    parsed = httpx.URL(url)
    assert set(parsed.params) == {"expires", "signature"}, url
    return key_of(url), int(parsed.params["expires"]), parsed.params["signature"]


async def served_privately(client: httpx.AsyncClient, url: str, ttl: int = 3600) -> bytes:
    response = await client.get(path_of(url))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] in ("image/png", "image/jpeg")
    assert response.headers["x-content-type-options"] == "nosniff"
    directive, max_age = response.headers["cache-control"].split(", max-age=")
    assert directive == "private"
    assert 0 < int(max_age) <= ttl * 1.5
    return response.content


async def refused(client: httpx.AsyncClient, target: str) -> str:
    """A request for a file that must look missing; returns the error's message."""
    response = await client.get(target)
    error = characters_error(response, 404, "not_found")
    assert "public" not in response.headers["cache-control"]
    return str(error["message"])


async def test_a_private_agents_avatar_is_served_only_at_its_signed_url(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agent = await private_agent(client, bearer(creds))
    url = agent["avatar_url"]
    key, expires, signature = signed_parts(url)
    assert 3600 <= expires - time.time() <= 5400
    await served_privately(client, url)
    # The characters API renders the same signed file for its owner.
    same = (await client.get(f"/v1/characters/{agent['id']}", headers=x_api_key(creds))).json()
    assert key_of(same["image_url"]) == key
    await served_privately(client, same["image_url"])

    # Everything else is exactly a missing file.
    missing = f"No file {key!r}"
    signer = app.state.personae.storage.signer
    stale, stale_signature = signer.sign(key, now=time.time() - 3 * 3600)
    assert stale < time.time()
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    attempts = [
        f"/files/{key}",  # unsigned
        f"/files/{key}?expires={expires}",
        f"/files/{key}?signature={signature}",
        f"/files/{key}?expires={expires}&signature={flipped}",  # tampered
        f"/files/{key}?expires={expires + 1}&signature={signature}",  # extended
        f"/files/{key}?expires={stale}&signature={stale_signature}",  # expired
        f"/files/{key}?expires=soon&signature={signature}",
    ]
    for target in attempts:
        assert await refused(client, target) == missing, target
    # A signature is for one key: it opens no other file.
    other = await private_agent(client, bearer(creds))
    other_key = key_of(other["avatar_url"])
    assert await refused(client, f"/files/{other_key}?expires={expires}&signature={signature}") == (
        f"No file {other_key!r}"
    )
    # A missing file answers the same, signed or not.
    gone = "avatars/img_000000000000000000000000-0123456789abcdef.png"
    gone_expires, gone_signature = signer.sign(gone)
    assert await refused(client, f"/files/{gone}?expires={gone_expires}&signature={gone_signature}")


async def test_public_avatars_are_cached_by_anyone_and_follow_visibility(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    created = await client.post(
        "/v1/characters", data=CHAR, files={"image": ("a.png", png(), "image/png")},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    character = created.json()
    plain = character["image_url"]
    assert "?" not in plain
    public = await client.get(path_of(plain))
    assert public.status_code == 200
    assert public.headers["cache-control"] == YEAR
    # Anyone's client may fetch it: no key, no signature.
    assert public.headers["x-content-type-options"] == "nosniff"

    hidden = await client.patch(
        f"/v1/characters/{character['id']}", json={"visibility": "private"},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert hidden.status_code == 200, hidden.text
    signed = hidden.json()["image_url"]
    assert signed_parts(signed)[0] == key_of(plain)
    await refused(client, path_of(plain))
    await served_privately(client, signed)
    agent = (await client.get(f"/api/v1/agents/{character['id']}", headers=bearer(creds))).json()
    assert signed_parts(agent["avatar_url"])[0] == key_of(plain)

    shown = await client.patch(
        f"/v1/characters/{character['id']}", json={"visibility": "public"},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert shown.json()["image_url"] == plain
    assert (await client.get(path_of(plain))).headers["cache-control"] == YEAR
    listed = (await client.get("/v1/characters", headers=x_api_key(creds))).json()["data"]
    assert [c["image_url"] for c in listed] == [plain]


async def test_a_generated_avatar_turns_public_with_its_agent(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agent = await private_agent(client, bearer(creds))
    key = signed_parts(agent["avatar_url"])[0]
    assert key.startswith("avatars/img_")  # named after its job, not the agent
    await refused(client, f"/files/{key}")
    shown = await client.patch(
        f"/api/v1/agents/{agent['id']}", json={"visibility": "public"}, headers=bearer(creds)
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["avatar_url"] == f"http://testserver/files/{key}"
    served = await client.get(f"/files/{key}")
    assert served.status_code == 200
    assert served.headers["cache-control"] == YEAR
    # Its image record is the account's own: still a signed URL.
    [image] = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
    assert signed_parts(image["url"])[0] == key


async def test_generated_and_conversation_images_are_signed_in_both_dialects(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    character = (await client.post("/v1/characters", json=CHAR, headers=x_api_key(creds))).json()
    conversation = await client.post(
        "/api/v1/conversations", json={"agent_id": character["id"]}, headers=bearer(creds)
    )
    assert conversation.status_code == 201, conversation.text
    conv = conversation.json()["id"]
    made = await client.post(
        "/api/v1/images", json={"prompt": "a fox", "conversation_id": conv}, headers=bearer(creds)
    )
    assert made.status_code == 201, made.text
    image = made.json()
    key = signed_parts(image["url"])[0]
    assert key.startswith("images/")
    await served_privately(client, image["url"])
    await refused(client, f"/files/{key}")

    agents = (
        await client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer(creds))
    ).json()
    characters = (
        await client.get(f"/v1/chat/conversations/{conv}/messages", headers=x_api_key(creds))
    ).json()["data"]
    for message in (agents[-1], characters[-1]):
        assert signed_parts(message["image_url"])[0] == key
        await served_privately(client, message["image_url"])


async def wait_until_deleted(app: FastAPI, key: str) -> None:
    """The file goes after the commit, in the background."""
    state: AppState = app.state.personae
    for _ in range(250):
        if state.storage.path(key) is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} still stored")


async def test_deleting_an_agent_leaves_no_image_pointing_at_a_deleted_file(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agent = await private_agent(client, bearer(creds))
    [image] = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
    assert image["status"] == "completed"
    deleted = await client.delete(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))
    assert deleted.status_code in (200, 204), deleted.text
    await wait_until_deleted(app, signed_parts(agent["avatar_url"])[0])
    await refused(client, path_of(agent["avatar_url"]))

    for headers in (bearer(creds), x_api_key(creds)):
        got = await client.get(f"/api/v1/images/{image['id']}", headers=headers)
        assert got.status_code == 200, got.text
        after = got.json()
        assert (after["status"], after["url"]) == ("deleted", None)
        assert {k: v for k, v in after.items() if k not in ("status", "url")} == {
            k: v for k, v in image.items() if k not in ("status", "url")
        }
        [listed] = (await client.get("/api/v1/images", headers=headers)).json()["data"]
        assert listed == after


async def regenerate_avatar(app: FastAPI, creds: Credentials, agent: dict[str, Any]) -> None:
    """A second avatar job for the agent, run the way the agents API runs one."""
    state: AppState = app.state.personae
    async with state.sessionmaker() as session:
        account = await AccountService(session).get(creds.account.id)
        character = await CharacterService(session, state.storage).get_own(account, agent["id"])
        images = ImageService(session, state.queue.enqueue_image)
        await generate_avatar(state, session, images, account, character, agent["sd_model_id"])


async def image_statuses(client: httpx.AsyncClient, creds: Credentials) -> list[tuple[str, bool]]:
    """(status, has a URL) of the account's images, oldest first."""
    listed = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"]
    return [(i["status"], i["url"] is not None) for i in reversed(listed)]


async def test_a_replaced_avatar_marks_its_image_deleted(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    agent = await private_agent(client, bearer(creds))
    first_key = signed_parts(agent["avatar_url"])[0]
    # A newer generated avatar retires the one before it.
    await regenerate_avatar(app, creds, agent)
    await wait_until_deleted(app, first_key)
    assert await image_statuses(client, creds) == [("deleted", False), ("completed", True)]
    now = (await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))).json()
    [_, latest] = (await client.get("/api/v1/images", headers=bearer(creds))).json()["data"][::-1]
    assert key_of(now["avatar_url"]) == key_of(latest["url"]) != first_key
    # So does an uploaded one.
    replaced = await client.patch(
        f"/v1/characters/{agent['id']}", data={"name": "Ada II"},
        files={"image": ("b.png", png(), "image/png")}, headers=x_api_key(creds),
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    await served_privately(client, replaced.json()["image_url"])
    await wait_until_deleted(app, key_of(latest["url"]))
    assert await image_statuses(client, creds) == [("deleted", False), ("deleted", False)]


async def test_the_signing_key_is_made_once_kept_private_and_survives_restarts(
    settings: Settings,
) -> None:
    async with truncate(settings):
        first = create_app(settings)
        async with LifespanManager(first, shutdown_timeout=60), make_client(first) as client:
            creds = await create_account(first)
            agent = await private_agent(client, bearer(creds))
        stored = settings.data_dir / KEY_FILE
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        secret = stored.read_text()
        assert len(secret.strip()) >= 32
        again = create_app(settings)
        async with LifespanManager(again, shutdown_timeout=60), make_client(again) as client:
            await served_privately(client, agent["avatar_url"])
        assert stored.read_text() == secret


async def test_signing_keys_rotate_without_breaking_urls_already_given(
    settings: Settings,
) -> None:
    old, new = "o" * 40, "n" * 40

    def with_keys(keys: str) -> FastAPI:
        return create_app(settings.model_copy(update={"file_signing_keys": SecretStr(keys)}))

    async with truncate(settings):
        before = with_keys(old)
        async with LifespanManager(before, shutdown_timeout=60), make_client(before) as client:
            creds = await create_account(before)
            agent = await private_agent(client, bearer(creds))
            given = agent["avatar_url"]
        # The new key signs, the old one still verifies.
        during = with_keys(f"{new},{old}")
        async with LifespanManager(during, shutdown_timeout=60), make_client(during) as client:
            await served_privately(client, given)
            fresh = await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))
            fresh_url = fresh.json()["avatar_url"]
            assert signed_parts(fresh_url)[2] != signed_parts(given)[2]
            await served_privately(client, fresh_url)
        # Once the old key is dropped, only what the new one signed opens.
        after = with_keys(new)
        async with LifespanManager(after, shutdown_timeout=60), make_client(after) as client:
            await refused(client, path_of(given))
            await served_privately(client, fresh_url)
        assert not (settings.data_dir / KEY_FILE).exists()  # configured keys: no file made


async def test_a_conversation_keeps_a_character_made_private_without_its_avatar(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, chatter = await make_account(), await make_account()
    created = await client.post(
        "/v1/characters", data=CHAR | {"greeting": "Hello there."},
        files={"image": ("a.png", png(), "image/png")}, headers=x_api_key(owner),
    )  # fmt: skip
    character = created.json()
    for creds in (owner, chatter):
        started = await client.post(
            "/api/v1/conversations", json={"agent_id": character["id"]}, headers=bearer(creds)
        )
        assert started.status_code == 201, started.text

    async def brief(creds: Credentials) -> dict[str, Any]:
        listed = await client.get("/v1/chat/conversations", headers=x_api_key(creds))
        [conversation] = listed.json()["data"]
        shown: dict[str, Any] = conversation["character"]
        return shown

    assert (await brief(chatter))["image_url"] == character["image_url"]
    hidden = await client.patch(
        f"/v1/characters/{character['id']}", json={"visibility": "private"},
        headers=x_api_key(owner),
    )  # fmt: skip
    assert hidden.status_code == 200
    assert await brief(chatter) == {"id": character["id"], "name": "Vexa", "image_url": None}
    await served_privately(client, (await brief(owner))["image_url"])
    await refused(client, path_of(character["image_url"]))
