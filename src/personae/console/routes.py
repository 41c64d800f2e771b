"""The console's routes, and how the application takes them in (`install`)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from personae.console import account, admin, auth, characters, chat, images, webhooks
from personae.console.web import HERE, PREFIX, SignInRequired, error_page, sign_in_redirect

router = APIRouter(prefix=PREFIX, include_in_schema=False)
router.add_api_route("", account.overview, methods=["GET"])
for section in (auth, account, characters, chat, images, webhooks):
    router.include_router(section.router)
router.include_router(admin.router, prefix="/admin")


def install(app: FastAPI) -> None:
    """Serve the console at /console (its pages, its static files) and its errors as pages."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    app.state.error_page = error_page
