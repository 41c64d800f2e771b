"""`GET /files/{key}`: stored images, with their content type and caching.

A public character's avatar is served to anyone and cached by anyone for a year (keys are
never reused, so a URL's bytes never change). Every other file is served only at the
signed, expiring URL the API rendered for those who may see it (`storage/signing.py`), with
`Cache-Control: private` until it expires. An unsigned, tampered or expired request for
such a file gets exactly what a missing file gets: 404.

With the s3 backend the store serves the files at its own URLs, and this route only keeps
the `/files/` URLs handed out before a move from the local backend working: after the same
checks it redirects (307, never cached, so that each use is checked again) to the file's
URL at the store, plain for a public avatar and presigned otherwise. Whether the object
exists is the store's to say.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from personae.api.deps import CharacterServiceDep, StateDep
from personae.errors import NotFound
from personae.storage.files import CONTENT_TYPES, KEY_RE, LocalStorage

router = APIRouter(tags=["files"])

PUBLIC_CACHE = "public, max-age=31536000, immutable"


@router.get(
    "/files/{key:path}",
    summary="A stored image",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}},
        307: {"description": "The file's URL at the object store (the s3 backend)"},
        404: {"description": "No such file, or a non-public file without a valid signature"},
    },
)
async def get_file(
    key: str,
    state: StateDep,
    characters: CharacterServiceDep,
    expires: str | None = None,
    signature: str | None = None,
) -> Response:
    """Public characters' avatars at their plain URL; every other file only with the
    `expires` and `signature` the API put in its URL."""
    missing = NotFound(f"No file {key!r}")
    storage = state.storage
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if path is None:
            raise missing
    elif KEY_RE.match(key):
        path = None  # in the object store, which says itself whether the file exists
    else:
        raise missing
    if expires is not None or signature is not None:
        remaining = state.url_signer.verify(key, expires or "", signature or "")
        if remaining is None:
            raise missing
        public, cache = False, f"private, max-age={remaining}"
    elif await characters.is_public_avatar(key):
        public, cache = True, PUBLIC_CACHE
    else:
        raise missing
    if path is None:
        return RedirectResponse(
            storage.url(key, public=public), headers={"Cache-Control": "no-store"}
        )
    return FileResponse(
        path,
        media_type=CONTENT_TYPES[path.suffix.lstrip(".")],
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )
