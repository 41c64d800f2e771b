"""The s3 files backend, against a real S3 server over HTTP: moto's standalone server (no
MinIO can be installed here). The app is built with `PERSONAE_STORAGE_BACKEND=s3`, and
every file is fetched the way a client would, from the URL the API rendered.

The bucket is set up the way docs/scaling.md tells an operator to: private, but for a
policy that lets anyone read the avatars. Public avatars are then plain URLs at the store;
every other file a presigned URL.

moto checks bucket policies but not the signatures of presigned URLs, which S3 and MinIO
do: `signature_holds` checks ours the way they would, so a URL changed after signing
(its host, its path, its signature) is caught here too.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hmac
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import boto3
import httpx
import pytest
from asgi_lifespan import LifespanManager
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as AwsCredentials
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from PIL import Image
from pydantic import ValidationError

from conftest import MakeAccount, create_account, make_client, truncate
from helpers import bearer, x_api_key
from personae.app import create_app
from personae.config import Settings
from personae.state import AppState
from personae.storage.processing import sanitize_image
from personae.storage.s3 import s3_client
from test_images import poll
from test_private_files import CHAR, png, private_agent

ACCESS_KEY, SECRET_KEY, REGION = "personae-test", "personae-test-secret", "eu-west-1"
PREFIX = "install-a"
YEAR = "public, max-age=31536000, immutable"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, for the whole run."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials by boto's standard chain (the environment), and nothing else of this
    machine's: no shared files, no instance metadata."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(s3_endpoint: str, aws_env: None) -> str:
    """A fresh bucket whose avatars anyone may read, as docs/scaling.md sets one up."""
    name = f"personae-{uuid.uuid4().hex[:12]}"
    admin = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    admin.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/{PREFIX}/avatars/*",
            }
        ],
    }
    admin.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return name


def s3_settings(base: Settings, endpoint: str, bucket: str, **more: Any) -> Settings:
    return base.model_copy(
        update={
            "storage_backend": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": endpoint,
            "s3_region": REGION,
            "s3_prefix": PREFIX,
            **more,
        }
    )


@pytest.fixture
def settings(settings: Settings, s3_endpoint: str, bucket: str) -> Settings:
    """conftest's settings (SQLite and PostgreSQL) with the s3 backend."""
    return s3_settings(settings, s3_endpoint, bucket)


def objects(endpoint: str, bucket: str) -> set[str]:
    listed = boto3.client("s3", endpoint_url=endpoint, region_name=REGION).list_objects_v2(
        Bucket=bucket
    )
    return {o["Key"] for o in listed.get("Contents", [])}


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def object_key(url: str, endpoint: str, bucket: str) -> str:
    """The object a URL at the store names (path-style: ENDPOINT/BUCKET/KEY)."""
    base = f"{endpoint}/{bucket}/"
    assert url.startswith(base), url
    return urlsplit(url).path.removeprefix(urlsplit(base).path)


def signature_holds(url: str) -> bool:
    """What S3 checks of a presigned GET before serving it: its signature is SigV4's for
    this host, path and query under our credentials, and it has not expired."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(params)["X-Amz-Signature"]
    signed = [(k, v) for k, v in params if k != "X-Amz-Signature"]
    request = AWSRequest(
        method="GET",
        url=parts._replace(query=urlencode(signed, quote_via=quote)).geturl(),
        headers={"Host": parts.netloc},
    )
    request.context["timestamp"] = dict(params)["X-Amz-Date"]
    auth = S3SigV4QueryAuth(AwsCredentials(ACCESS_KEY, SECRET_KEY), "s3", REGION)
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    made = calendar.timegm(time.strptime(dict(params)["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    fresh = made + int(dict(params)["X-Amz-Expires"]) > time.time()
    return fresh and hmac.compare_digest(expected, given)


def tampered(url: str) -> str:
    signature = query(url)["X-Amz-Signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    return url.replace(f"X-Amz-Signature={signature}", f"X-Amz-Signature={flipped}")


def presigned(url: str, settings: Settings) -> str:
    """Checks a private file's URL: at the store, presigned for as long as the local
    signer's URLs live, and correctly signed; returns the object's key."""
    key = object_key(url, settings.s3_endpoint_url, str(settings.s3_bucket))
    params = query(url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert int(params["X-Amz-Expires"]) == settings.file_url_ttl_seconds * 3 // 2
    assert signature_holds(url), url
    assert not signature_holds(tampered(url))
    return key


async def fetched(url: str, content_type: str = "image/png") -> httpx.Response:
    """GET over real HTTP, as a browser would: no API key, no client of ours."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text)
    assert response.headers["content-type"] == content_type
    return response


async def store_status(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(url)).status_code


async def gone(url: str) -> None:
    """Wait until the store answers 404 for a file (deleted after the commit, in the
    background)."""
    async with httpx.AsyncClient() as http:
        for _ in range(250):
            if (await http.get(url)).status_code == 404:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"{url} still stored")


async def test_a_public_avatar_is_a_plain_url_the_store_serves_to_anyone(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    settings: Settings,
    s3_endpoint: str,
    bucket: str,
) -> None:
    creds = await make_account()
    original = png()
    created = await client.post(
        "/v1/characters", data=CHAR, files={"image": ("a.png", original, "image/png")},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    plain = created.json()["image_url"]
    key = object_key(plain, s3_endpoint, bucket)
    assert key.startswith(f"{PREFIX}/avatars/")
    assert "?" not in plain
    assert objects(s3_endpoint, bucket) == {key}
    served = await fetched(plain)
    assert served.content == sanitize_image(original, settings.max_upload_bytes).data
    assert served.headers["cache-control"] == YEAR
    # Nothing is kept on this machine.
    assert not (settings.data_dir / "files").exists()

    # A `/files/` URL (as the local backend gave them) sends the caller to the store.
    legacy = await client.get(f"/files/{key.removeprefix(PREFIX + '/')}")
    assert legacy.status_code == 307
    assert legacy.headers["location"] == plain
    assert legacy.headers["cache-control"] == "no-store"

    # Made private, the character's avatar is presigned; public again, plain again.
    hidden = await client.patch(
        f"/v1/characters/{created.json()['id']}", json={"visibility": "private"},
        headers=x_api_key(creds),
    )  # fmt: skip
    signed = hidden.json()["image_url"]
    assert presigned(signed, settings) == key
    assert (await fetched(signed)).content == served.content
    assert (await client.get(f"/files/{key.removeprefix(PREFIX + '/')}")).status_code == 404
    shown = await client.patch(
        f"/v1/characters/{created.json()['id']}", json={"visibility": "public"},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert shown.json()["image_url"] == plain


async def test_private_files_are_presigned_and_the_store_refuses_them_unsigned(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    settings: Settings,
    s3_endpoint: str,
    bucket: str,
) -> None:
    creds = await make_account()
    # A private agent's avatar, made by the placeholder engine on the in-process runner.
    agent = await private_agent(client, bearer(creds))
    avatar = presigned(agent["avatar_url"], settings)
    assert avatar.startswith(f"{PREFIX}/avatars/img_")
    served = await fetched(agent["avatar_url"])
    assert served.headers["cache-control"] == f"private, max-age={settings.file_url_ttl_seconds}"
    # Rendered again, the same URL: a browser's cache keeps working.
    again = (await client.get(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))).json()
    assert again["avatar_url"] == agent["avatar_url"]

    # A generated image: only its presigned URL opens it.
    made = await client.post(
        "/api/v1/images", json={"prompt": "a fox", "width": 64, "height": 64},
        headers=bearer(creds),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    key = presigned(url, settings)
    assert key.startswith(f"{PREFIX}/images/")
    assert (await fetched(url)).content.startswith(b"\x89PNG")
    assert await store_status(url.split("?")[0]) == 403  # unsigned: refused by the store
    assert objects(s3_endpoint, bucket) == {avatar, key}

    # The local signer's `/files/` URLs still work, through a redirect to a presigned one.
    state: AppState = app.state.personae
    file_key = key.removeprefix(PREFIX + "/")
    expires, signature = state.url_signer.sign(file_key)
    legacy = await client.get(f"/files/{file_key}?expires={expires}&signature={signature}")
    assert legacy.status_code == 307
    assert presigned(legacy.headers["location"], settings) == key
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for refused in (
        f"/files/{file_key}",
        f"/files/{file_key}?expires={expires}&signature={flipped}",
        "/files/../secret.png",
    ):
        assert (await client.get(refused)).status_code == 404, refused


async def test_replacing_and_deleting_remove_the_objects(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    settings: Settings,
    s3_endpoint: str,
    bucket: str,
) -> None:
    creds = await make_account()
    agent = await private_agent(client, bearer(creds))
    first = agent["avatar_url"]
    replaced = await client.patch(
        f"/v1/characters/{agent['id']}", data={"name": "Ada II"},
        files={"image": ("b.png", png(), "image/png")}, headers=x_api_key(creds),
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    second = replaced.json()["image_url"]
    second_key = presigned(second, settings)
    await fetched(second)
    await gone(first)
    assert objects(s3_endpoint, bucket) == {second_key}

    deleted = await client.delete(f"/api/v1/agents/{agent['id']}", headers=bearer(creds))
    assert deleted.status_code in (200, 204), deleted.text
    await gone(second)
    assert objects(s3_endpoint, bucket) == set()


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_image_made_by_a_worker_on_another_machine_lands_in_the_bucket(
    tmp_path: Path, postgres_database: str, redis_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The server and the worker share the database and the bucket, and nothing else:
    each has its own data dir, as it would on its own machine."""
    base = Settings(
        data_dir=tmp_path / "server",
        database_url=postgres_database,
        public_url="http://testserver",
        queue_url=redis_url,
        queue_name=f"personae-test-{uuid.uuid4().hex[:8]}",
        llm_preload=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    settings = s3_settings(base, s3_endpoint, bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_DATA_DIR=str(tmp_path / "worker"),
        PERSONAE_DATABASE_URL=postgres_database,
        PERSONAE_QUEUE_URL=settings.queue_url,
        PERSONAE_QUEUE_NAME=settings.queue_name,
        PERSONAE_PUBLIC_URL=settings.resolved_public_url,
        PERSONAE_STORAGE_BACKEND="s3",
        PERSONAE_S3_BUCKET=bucket,
        PERSONAE_S3_ENDPOINT_URL=s3_endpoint,
        PERSONAE_S3_REGION=REGION,
        PERSONAE_S3_PREFIX=PREFIX,
    )
    (tmp_path / "worker").mkdir()
    async with truncate(settings):
        app = create_app(settings)
        async with LifespanManager(app, shutdown_timeout=60), make_client(app) as client:
            assert not app.state.personae.queue.in_process  # this server runs no jobs
            log = (tmp_path / "worker" / "worker.log").open("wb")
            worker = subprocess.Popen(
                [sys.executable, "-m", "personae", "worker"], env=env,
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
            try:
                creds = await create_account(app)
                made = await client.post(
                    "/api/v1/images", json={"prompt": "a harbour", "width": 64, "height": 64,
                                            "async": True},
                    headers=bearer(creds),
                )  # fmt: skip
                assert made.status_code in (201, 202), made.text
                image = await poll(client, creds, made.json()["id"], "completed", timeout=60)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
                log.close()
            key = presigned(image["url"], settings)
            assert key.startswith(f"{PREFIX}/images/{image['id']}-")
            assert objects(s3_endpoint, bucket) == {key}
            assert (await fetched(image["url"])).content.startswith(b"\x89PNG")
    for machine in ("server", "worker"):
        assert not (tmp_path / machine / "files").exists()


def test_the_s3_backend_without_a_bucket_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONAE_STORAGE_BACKEND", "s3")
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("PERSONAE_S3_BUCKET", raising=False)
        else:
            monkeypatch.setenv("PERSONAE_S3_BUCKET", unset)
        with pytest.raises(ValidationError, match="PERSONAE_S3_BUCKET"):
            Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("PERSONAE_S3_BUCKET", "personae-files")
    assert Settings(_env_file=None).s3_bucket == "personae-files"  # type: ignore[call-arg]
    monkeypatch.setenv("PERSONAE_STORAGE_BACKEND", "local")
    monkeypatch.delenv("PERSONAE_S3_BUCKET")
    assert Settings(_env_file=None).storage_backend == "local"  # type: ignore[call-arg]


def test_the_s3_backend_without_credentials_is_refused_at_start(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    settings = Settings(
        data_dir=tmp_path, storage_backend="s3", s3_bucket="personae-files",
        _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
        s3_client(settings)


async def test_a_card_export_reads_the_avatar_from_the_bucket(
    client: httpx.AsyncClient, make_account: MakeAccount, s3_endpoint: str, bucket: str
) -> None:
    creds = await make_account()
    created = await client.post(
        "/v1/characters", data=CHAR, files={"image": ("a.png", png(), "image/png")},
        headers=x_api_key(creds),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    exported = await client.get(
        f"/v1/characters/{created.json()['id']}/card",
        params={"format": "png", "spec": "v2"},
        headers=x_api_key(creds),
    )
    assert exported.status_code == 200, exported.text
    with Image.open(io.BytesIO(exported.content)) as img, Image.open(io.BytesIO(png())) as avatar:
        assert img.size == avatar.size  # the stored avatar, not a plain image
        card = json.loads(base64.b64decode(img.text["chara"]))  # type: ignore[attr-defined]
    assert card["data"]["name"] == CHAR["name"]
