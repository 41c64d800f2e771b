"""Files in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...): the backend for installs
whose servers and workers run on several machines, where no process may keep a file that
another one has to serve.

boto3, its blocking calls run in a thread (`asyncio.to_thread`); docs/architecture.md says
why not aiobotocore. Only uploads and deletes reach the store. URLs are made here without a
network call: a public character's avatar gets a plain URL (`PERSONAE_S3_PUBLIC_URL`, a
CDN, or else the path-style ENDPOINT/BUCKET/KEY, which the bucket's policy must let anyone
read), every other file a presigned GET that lives as long as the local signer's URLs and
is checked by the store itself. Credentials come from boto's standard chain (environment,
shared files, instance or task roles).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from personae.config import Settings
from personae.errors import ServiceUnavailable
from personae.storage.files import CONTENT_TYPES, KEY_RE, Storage

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger("personae")

# The cache headers a stored object carries: what its plain URL (a public avatar's) answers
# with. Keys are never reused, so the bytes at a URL never change.
PUBLIC_CACHE = "public, max-age=31536000, immutable"
PRESIGN_MAX_SECONDS = 7 * 86400  # the longest a SigV4 presigned URL may live
URL_CACHE_SIZE = 10_000


def s3_client(settings: Settings) -> S3Client:
    """A client for the configured store. Path-style addressing, so that a self-hosted
    server needs no wildcard DNS; checksums only where S3 requires them, since several
    S3-compatible servers refuse the ones newer botocore adds to every upload."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=30,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise ValueError(
            "PERSONAE_STORAGE_BACKEND=s3 found no S3 credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run with an instance or task role"
        )
    return session.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        config=config,
    )


class S3Storage(Storage):
    """Files as objects under `prefix` in `bucket`.

    A presigned URL depends on the moment it is made, so a file rendered twice would get
    two URLs and a browser would fetch it twice. Each URL is therefore kept and handed out
    again while it has at least `ttl_seconds` left: it is signed for one and a half times
    that (as the local signer's grid does), and every URL handed out lives between
    `ttl_seconds` and that. The cache is this process's alone and bounded; other processes
    make URLs of their own, each as good.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        ttl_seconds: int,
        prefix: str = "",
        public_url: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.public_base = public_url or f"{client.meta.endpoint_url.rstrip('/')}/{bucket}"
        self.ttl = ttl_seconds
        self.expires_in = min(ttl_seconds + max(1, ttl_seconds // 2), PRESIGN_MAX_SECONDS)
        self._reuse_for = self.expires_in - ttl_seconds
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        if settings.s3_bucket is None:  # Settings refuses this; said again for the types
            raise ValueError("PERSONAE_STORAGE_BACKEND=s3 needs PERSONAE_S3_BUCKET")
        return cls(
            s3_client(settings),
            settings.s3_bucket,
            ttl_seconds=settings.file_url_ttl_seconds,
            prefix=settings.s3_prefix,
            public_url=settings.s3_public_url,
        )

    def object_key(self, key: str) -> str:
        """The object's name in the bucket: the install's prefix, then the file's key."""
        return self.prefix + key

    async def save(self, key: str, data: bytes) -> None:
        if not KEY_RE.match(key):
            raise ValueError(f"invalid storage key {key!r}")
        await self._call(
            "upload",
            key,
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=data,
            ContentType=CONTENT_TYPES[key.rsplit(".", 1)[1]],
            CacheControl=PUBLIC_CACHE,
        )

    async def delete(self, key: str) -> None:
        if KEY_RE.match(key):
            await self._call(
                "delete",
                key,
                self.client.delete_object,
                Bucket=self.bucket,
                Key=self.object_key(key),
            )
            with self._lock:
                self._urls.pop(key, None)

    async def read(self, key: str) -> bytes | None:
        if not KEY_RE.match(key):
            return None

        def get() -> bytes | None:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = response["Body"].read()
            return body

        try:
            return await asyncio.to_thread(get)
        except (BotoCoreError, ClientError) as exc:
            log.warning("S3 read of %s failed: %s", key, exc)
            raise ServiceUnavailable("File storage is unavailable") from exc

    async def _call(self, what: str, key: str, method: Callable[..., Any], **params: Any) -> None:
        try:
            await asyncio.to_thread(method, **params)
        except (BotoCoreError, ClientError) as exc:
            # boto3 has already retried; the store is down, refuses us, or is misconfigured.
            log.warning("S3 %s of %s failed: %s", what, key, exc)
            raise ServiceUnavailable("File storage is unavailable") from exc

    def url(self, key: str, *, public: bool = False) -> str:
        if public:
            return f"{self.public_base}/{quote(self.object_key(key))}"
        now = time.monotonic()
        with self._lock:
            kept = self._urls.get(key)
            if kept is not None and kept[1] > now:
                self._urls.move_to_end(key)
                return kept[0]
        url = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.object_key(key),
                # Not the object's public, year-long header: caches keep it for the
                # holder of this URL, and no longer than the URL lives.
                "ResponseCacheControl": f"private, max-age={self.ttl}",
            },
            ExpiresIn=self.expires_in,
        )
        with self._lock:
            self._urls[key] = (url, now + self._reuse_for)
            self._urls.move_to_end(key)
            if len(self._urls) > URL_CACHE_SIZE:
                self._urls.popitem(last=False)
        return url

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
