"""`POST /v1/characters` as multipart with an image: checked by content, re-encoded, served."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from conftest import MakeAccount
from helpers import characters_error, x_api_key
from images import jpeg_with_exif, noise_png, png, png_bomb

FORM = {
    "name": "Vexa",
    "description": "Rogue courier",
    "personality": "Defiant",
    "background": "Slums",
}


def files_dir(app: FastAPI) -> Path:
    return Path(app.state.personae.storage.root)


def stored_files(app: FastAPI) -> list[Path]:
    root = files_dir(app)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def upload(
    client: httpx.AsyncClient,
    key: dict[str, str],
    data: bytes,
    name: str = "a.png",
    mime: str = "image/png",
    form: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        "/v1/characters", data=form or FORM, files={"image": (name, data, mime)}, headers=key
    )


async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    assert url.startswith("http://testserver/files/avatars/")
    return await client.get(url.removeprefix("http://testserver"))


async def test_png_upload_is_served_reencoded(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    original = png()
    response = await upload(
        client, x_api_key(creds), original, form=FORM | {"tags": '["Cyberpunk", "female"]'}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tags"] == ["cyberpunk", "female"]
    served = await fetch(client, body["image_url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert "immutable" in served.headers["cache-control"]
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.content != original  # re-encoded
    assert b"secret png comment" not in served.content  # metadata dropped
    with Image.open(io.BytesIO(served.content)) as img:
        assert img.format == "PNG"
        assert img.size == (32, 24)
    # The catalogue and the agents API show the same file.
    listed = (await client.get("/v1/characters", headers=x_api_key(creds))).json()["data"][0]
    assert listed["image_url"] == body["image_url"]
    agent = (await client.get(f"/api/v1/agents/{body['id']}", headers=x_api_key(creds))).json()
    assert agent["avatar_url"] == body["image_url"]


async def test_jpeg_upload_drops_exif_after_applying_orientation(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await upload(
        client,
        x_api_key(creds),
        jpeg_with_exif(),
        "me.jpg",
        "image/jpeg",
        form=FORM | {"tags": "a, b ,A"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["tags"] == ["a", "b"]
    served = await fetch(client, response.json()["image_url"])
    assert served.headers["content-type"] == "image/jpeg"
    assert b"SecretCam" not in served.content
    with Image.open(io.BytesIO(served.content)) as img:
        assert img.format == "JPEG"
        assert img.size == (20, 40)  # rotated as its orientation said
        assert not img.getexif()


async def test_declared_type_and_name_are_ignored(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await upload(client, x_api_key(creds), png(), "photo.jpg", "image/jpeg")
    assert response.status_code == 201
    assert response.json()["image_url"].endswith(".png")


@pytest.mark.parametrize(
    ("data", "name", "mime"),
    [
        (b"%PDF-1.4 not an image at all", "x.png", "image/png"),
        (b"GIF89a" + b"\x00" * 64, "x.gif", "image/gif"),
        (png()[:40], "cut.png", "image/png"),
        (b"", "empty.png", "image/png"),
    ],
)
async def test_non_images_are_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    data: bytes,
    name: str,
    mime: str,
) -> None:
    creds = await make_account()
    error = characters_error(
        await upload(client, x_api_key(creds), data, name, mime), 400, "invalid_request"
    )
    assert error["message"].startswith("image:")
    assert (await client.get("/v1/characters", headers=x_api_key(creds))).json()["pagination"][
        "total"
    ] == 0
    assert stored_files(app) == []


async def test_oversized_file_is_413_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    big = noise_png(1330)  # about 5.3 MB: over the file limit, within the form's allowance
    assert len(big) > 5 * 1024 * 1024
    error = characters_error(await upload(client, x_api_key(creds), big), 413, "payload_too_large")
    assert error["details"]["limit_bytes"] == 5 * 1024 * 1024
    assert stored_files(app) == []
    assert (await client.get("/v1/characters", headers=x_api_key(creds))).json()["pagination"][
        "total"
    ] == 0


async def test_far_oversized_body_is_413_before_parsing(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await upload(client, x_api_key(creds), b"\x00" * (7 * 1024 * 1024))
    characters_error(response, 413, "payload_too_large")


async def test_decompression_bomb_is_refused_before_decoding(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    bomb = png_bomb(6_000)
    assert len(bomb) < 100_000  # 36 MB of pixels in a small file
    error = characters_error(await upload(client, x_api_key(creds), bomb), 400, "invalid_request")
    assert "6000x6000 is too large" in error["message"]
    huge = png_bomb(20_000)  # past Pillow's own bomb threshold too
    error = characters_error(await upload(client, x_api_key(creds), huge), 400, "invalid_request")
    assert "too" in error["message"]
    assert stored_files(app) == []


async def test_form_validation(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creds = await make_account()
    key = x_api_key(creds)
    missing = await client.post(
        "/v1/characters",
        data={"name": "x"},
        files={"image": ("a.png", png(), "image/png")},
        headers=key,
    )
    assert characters_error(missing, 400, "invalid_request")["message"].startswith("description")
    bad_age = await client.post(
        "/v1/characters",
        data=FORM | {"age": "ten"},
        files={"image": ("a.png", png(), "image/png")},
        headers=key,
    )
    assert characters_error(bad_age, 400, "invalid_request")["message"].startswith("age")
    bad_tags = await client.post(
        "/v1/characters",
        data=FORM | {"tags": "[1, 2]"},
        files={"image": ("a.png", png(), "image/png")},
        headers=key,
    )
    assert characters_error(bad_tags, 400, "invalid_request")["message"].startswith("tags")
    text_image = await client.post(
        "/v1/characters",
        data=FORM | {"image": "not a file"},
        files={"other": ("a.png", b"x", "image/png")},
        headers=key,
    )
    characters_error(text_image, 400, "invalid_request")
    no_file = await client.post(
        "/v1/characters", data=FORM, files={"x": ("", b"", "text/plain")}, headers=key
    )
    characters_error(no_file, 400, "invalid_request")


async def test_multipart_without_an_image_works(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    boundary = "personae-test-boundary"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in FORM.items()
    )
    body = (parts + f"--{boundary}--\r\n").encode()
    headers = x_api_key(creds) | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await client.post("/v1/characters", content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["image_url"] is None


async def test_unexpected_files_and_urlencoded_forms_are_refused(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    response = await client.post(
        "/v1/characters",
        data=FORM,
        files={"unused": ("", b"", "application/octet-stream")},
        headers=x_api_key(creds),
    )
    # An unexpected file field is refused; a plain form (urlencoded) is not a supported type.
    characters_error(response, 400, "invalid_request")
    encoded = await client.post("/v1/characters", data=FORM, headers=x_api_key(creds))
    characters_error(encoded, 415, "unsupported_media_type")


async def test_replacing_the_image_removes_the_old_file(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creds = await make_account()
    first = (await upload(client, x_api_key(creds), png())).json()
    assert len(stored_files(app)) == 1
    response = await client.patch(
        f"/v1/characters/{first['id']}",
        data={"name": "Vexa II"},
        files={"image": ("b.jpg", jpeg_with_exif(), "image/jpeg")},
        headers=x_api_key(creds),
    )
    assert response.status_code == 200, response.text
    assert response.json()["image_url"] != first["image_url"]
    assert response.json()["name"] == "Vexa II"
    import asyncio

    for _ in range(50):  # the old file goes after the commit, in the background
        if len(stored_files(app)) == 1:
            break
        await asyncio.sleep(0.02)
    assert [p.suffix for p in stored_files(app)] == [".jpg"]
    assert (await fetch(client, first["image_url"])).status_code == 404
    deleted = await client.delete(f"/v1/characters/{first['id']}", headers=x_api_key(creds))
    assert deleted.status_code == 200
    for _ in range(50):
        if not stored_files(app):
            break
        await asyncio.sleep(0.02)
    assert stored_files(app) == []


async def test_files_route_refuses_bad_keys(client: httpx.AsyncClient) -> None:
    for path in (
        "/files/../personae.db",
        "/files/avatars/nothing.png",
        "/files/avatars/x.gif",
        "/files/%2e%2e/x.png",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
