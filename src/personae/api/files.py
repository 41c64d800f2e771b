"""`GET /files/{key}`: stored images, with their content type and long-lived caching
(keys are never reused, so a URL's bytes never change)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from personae.api.deps import StateDep
from personae.errors import NotFound
from personae.image.storage import CONTENT_TYPES

router = APIRouter(tags=["files"])


@router.get("/files/{key:path}", summary="A stored image", response_class=FileResponse)
async def get_file(key: str, state: StateDep) -> FileResponse:
    path = state.storage.path(key)
    if path is None:
        raise NotFound(f"No file {key!r}")
    return FileResponse(
        path,
        media_type=CONTENT_TYPES[path.suffix.lstrip(".")],
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
