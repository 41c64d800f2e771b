"""The console's routes, and how the application takes them in (`install`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from personae.api.query import reject_control_characters
from personae.console import account, admin, auth, characters, chat, images, webhooks
from personae.console.web import (
    HERE,
    PREFIX,
    SignInRequired,
    error_page,
    redirect,
    sign_in_redirect,
)


async def _with_slash() -> Response:
    """The API answers 404 for a path with a trailing slash; a person typing the address
    gets the console instead."""
    return redirect(PREFIX)


# As in the dialects: an id or a query value holding a control character is refused (400)
# before anything reads it (PostgreSQL cannot even compare a string holding NUL).
router = APIRouter(
    prefix=PREFIX, include_in_schema=False, dependencies=[Depends(reject_control_characters)]
)
router.add_api_route("", account.overview, methods=["GET"])
router.add_api_route("/", _with_slash, methods=["GET"])
for section in (auth, account, characters, chat, images, webhooks):
    router.include_router(section.router)
router.include_router(admin.router, prefix="/admin")


def install(app: FastAPI) -> None:
    """Serve the console at /console (its pages, its static files) and its errors as pages."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    app.state.error_page = error_page
