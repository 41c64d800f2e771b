"""Sign-up, sign-in, sign-out and the password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from personae.api.deps import SettingsDep, StateDep
from personae.console.web import (
    PREFIX,
    SESSION_COOKIE,
    ConsoleAccount,
    SignInDep,
    check_csrf,
    clear_session_cookie,
    redirect,
    render,
    set_session_cookie,
)
from personae.errors import PersonaeError, RateLimited
from personae.observability import metrics

router = APIRouter(dependencies=[Depends(check_csrf)])
Text = Annotated[str, Form(max_length=256)]


def _next(target: str | None) -> str:
    """Only a path of the console itself: never an open redirect."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX


async def _limit(request: Request, state: StateDep, login: str) -> None:
    """Sign-in and sign-up attempts per minute: per username and per client address."""
    per_minute = state.settings.console_logins_per_minute
    address = request.client.host if request.client else "unknown"
    for subject, limit in (
        (f"console-login:{login.strip().lower()}", per_minute),
        (f"console-address:{address}", per_minute * 5),
    ):
        result = await state.limiter.hit(subject, limit)
        if not result.allowed:
            metrics.REFUSALS.labels("rate_limit").inc()
            error = result.error()
            raise RateLimited("Too many attempts: wait a minute and try again",
                              headers=error.headers)  # fmt: skip


@router.get("/signup")
async def signup_form(request: Request, settings: SettingsDep) -> Response:
    return render(request, "signup.html", {"mode": settings.signup, "form": {}})


@router.post("/signup")
async def signup(
    request: Request,
    state: StateDep,
    signin: SignInDep,
    username: Text,
    email: Text,
    password: Text,
    invite: Text = "",
) -> Response:
    await _limit(request, state, username)
    mode = state.settings.signup
    form = {"username": username, "email": email, "invite": invite}
    try:
        signed = await signin.sign_up(mode, username.strip(), email.strip(), password,
                                      invite or None)  # fmt: skip
    except PersonaeError as exc:
        await signin.repo.session.rollback()
        return render(request, "signup.html", {"mode": mode, "form": form, "error": exc},
                      status=exc.status)  # fmt: skip
    response = redirect(f"{PREFIX}/keys?welcome=1")
    set_session_cookie(request, response, signed.token, state.settings.console_session_hours * 3600)
    return response


@router.get("/login")
async def login_form(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _next(next), "signup": settings.signup})


@router.post("/login")
async def login(
    request: Request,
    state: StateDep,
    signin: SignInDep,
    login: Text,
    password: Text,
    next: Text = PREFIX,
) -> Response:
    await _limit(request, state, login)
    try:
        signed = await signin.sign_in(login, password)
    except PersonaeError as exc:
        context = {"next": _next(next), "login": login, "error": exc,
                   "signup": state.settings.signup}  # fmt: skip
        return render(request, "login.html", context, status=exc.status)
    response = redirect(_next(next))
    set_session_cookie(request, response, signed.token, state.settings.console_session_hours * 3600)
    return response


@router.post("/logout")
async def logout(request: Request, signin: SignInDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await signin.sign_out(token)
    response = redirect(f"{PREFIX}/login")
    clear_session_cookie(request, response)
    return response


@router.get("/password")
async def password_form(request: Request, account: ConsoleAccount) -> Response:
    return render(request, "password.html")


@router.post("/password")
async def change_password(
    request: Request,
    account: ConsoleAccount,
    signin: SignInDep,
    current_password: Text,
    new_password: Text,
) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    try:
        await signin.change_password(account, current_password, new_password, token)
    except PersonaeError as exc:  # refused before anything was written
        return render(request, "password.html", {"error": exc}, status=exc.status)
    return render(request, "password.html", {"changed": True})
