"""What every console page shares: templates, the session and CSRF cookies, the signed-in
account as a dependency, and errors as pages.

* **Session:** `personae_session`, an HttpOnly, SameSite=Lax cookie holding a random token
  (account/signin.py keeps its hash); `Secure` unless the request is plain HTTP to a
  loopback address (`PERSONAE_CONSOLE_SECURE_COOKIES`).
* **CSRF:** a double-submit token. `personae_csrf` (HttpOnly, SameSite=Strict) holds a
  random value that every form repeats in a hidden `csrf` field (scripts send it as
  `X-CSRF-Token`, read from the page's `<meta name="csrf-token">`); a POST whose two
  values differ is refused with 403 before anything else runs. Another site can make a
  browser send the cookie, never read it, so it cannot forge the field.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from personae.account.money import from_micros
from personae.account.signin import SignIn
from personae.api.deps import SessionDep, StateDep
from personae.api.errors import respond
from personae.errors import Forbidden, PersonaeError, Unauthorized
from personae.models import Account

PREFIX = "/console"
SESSION_COOKIE = "personae_session"
CSRF_COOKIE = "personae_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
HERE = Path(__file__).parent
# No inline script or style anywhere: the console's own files, and images from wherever
# the storage serves them (the API's /files/ or an S3 bucket).
CSP = (
    "default-src 'self'; img-src 'self' https: http: data: blob:; script-src 'self'; "
    "style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["money"] = lambda micros: f"{from_micros(int(micros or 0)):.4f}"
templates.env.filters["thousands"] = lambda n: f"{int(n or 0):,}"
templates.env.filters["when"] = lambda dt: dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "never"


@dataclass(frozen=True)
class Viewer:
    """Who the page is for, as its header shows them: copied out of the ORM row, so that an
    error page can still be drawn after the request's session rolled back."""

    id: str
    username: str
    plan_name: str
    is_admin: bool


class SignInRequired(Exception):
    """No signed-in account: pages redirect to the sign-in form."""


async def signin_service(state: StateDep, session: SessionDep) -> SignIn:
    return SignIn(session, timedelta(hours=state.settings.console_session_hours))


SignInDep = Annotated[SignIn, Depends(signin_service)]


def secure_cookies(request: Request) -> bool:
    mode = request.app.state.personae.settings.console_secure_cookies
    if mode != "auto":
        return bool(mode == "always")
    if request.url.scheme == "https":
        return True
    host = request.url.hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def csrf_token(request: Request) -> str:
    """The page's CSRF value: the cookie's, or a new one `render` will set."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if token is None:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return str(token)


def set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path=PREFIX, httponly=True,
        secure=secure_cookies(request), samesite="lax",
    )  # fmt: skip


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=PREFIX, httponly=True, secure=secure_cookies(request),
        samesite="lax",
    )  # fmt: skip


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    context = {
        "account": getattr(request.state, "console_account", None),
        "csrf": csrf_token(request),
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, template, context, status_code=status)
    new = getattr(request.state, "new_csrf", None)
    if new is not None:
        response.set_cookie(
            CSRF_COOKIE, new, path=PREFIX, httponly=True, secure=secure_cookies(request),
            samesite="strict",
        )  # fmt: skip
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def redirect(url: str) -> RedirectResponse:
    """After a POST: see the result with a GET (303)."""
    return RedirectResponse(url, status_code=303)


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request without the page's CSRF token (403)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise Forbidden("The form's security token is missing or stale: reload the page "
                        "and try again")  # fmt: skip


async def signed_in(request: Request, signin: SignInDep) -> Account:
    """The account of the session cookie, or a redirect to the sign-in form."""
    token = request.cookies.get(SESSION_COOKIE)
    account = await signin.account_of(token) if token else None
    if account is None:
        raise SignInRequired
    request.state.console_account = Viewer(
        account.id, account.username, account.plan_name, account.is_admin
    )
    return account


ConsoleAccount = Annotated[Account, Depends(signed_in)]


async def acting(request: Request, state: StateDep, account: ConsoleAccount) -> Account:
    """A signed-in account doing something: counted against its plan's per-minute limit,
    as an API request is (so the console is no way around it)."""
    result = await state.limiter.hit(account.id, account.effective_rate_limit)
    if not result.allowed:
        raise result.error()
    return account


ActingAccount = Annotated[Account, Depends(acting)]


async def admin(account: ConsoleAccount) -> Account:
    if not account.is_admin:
        raise Forbidden("Only an admin may see this page")
    return account


AdminAccount = Annotated[Account, Depends(admin)]


def wants_page(request: Request) -> bool:
    """A browser's navigation or form post under /console, not a script's call (the
    playground's stream sends `X-CSRF-Token` and reads JSON errors)."""
    path = request.url.path
    if not (path == PREFIX or path.startswith(PREFIX + "/")) or path.startswith(
        PREFIX + "/static/"
    ):
        return False
    scripted = CSRF_HEADER.lower() in request.headers
    return not scripted and "text/event-stream" not in request.headers.get("accept", "")


def error_page(request: Request, error: PersonaeError) -> Response | None:
    """The console's errors as a page (installed as `app.state.error_page`)."""
    if not wants_page(request):
        return None
    response = render(request, "error.html", {"error": error}, status=error.status)
    for name, value in error.headers.items():
        response.headers.setdefault(name, value)
    return response


async def sign_in_redirect(request: Request, exc: Exception) -> Response:
    if not wants_page(request):
        return respond(request, Unauthorized("Sign in to the console first"))
    # Back to this page after signing in; a form post (its session ended meanwhile) goes
    # back to the page the form was on, not to a URL that only takes POST.
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        referer = urlsplit(request.headers.get("referer", ""))
        same_site = referer.netloc == request.url.netloc and referer.path.startswith(PREFIX)
        target = referer.path if same_site else PREFIX
    return redirect(f"{PREFIX}/login?next={quote(target, safe='')}")
