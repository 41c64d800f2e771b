"""`personae accounts …` and `personae keys …`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.money import from_micros
from personae.account.plans import PLAN_NAMES
from personae.account.service import AccountService, Credentials, parse_amount
from personae.account.signin import SignIn
from personae.cli.common import (
    JsonOpt,
    console,
    exit_on_error,
    print_json,
    print_record,
    print_table,
    run_in_session,
)
from personae.models import Account, ApiKey

accounts = typer.Typer(help="Create and manage accounts.", no_args_is_help=True)
keys = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

PlanOpt = Annotated[
    str, typer.Option(help=f"One of the plans ({', '.join(PLAN_NAMES)} by default).")
]


def account_dict(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "username": account.username,
        "email": account.email,
        "plan": account.plan_name,
        "balance": from_micros(account.balance_micros),
        "rate_limit_per_minute": account.effective_rate_limit,
        "chat_requests_per_month": account.effective_chat_quota,
        "admin": account.is_admin,
        "created_at": account.created_at.isoformat(),
    }


def _print_credentials(creds: Credentials, as_json: bool) -> None:
    if as_json:
        print_json(
            account_dict(creds.account)
            | {"api_key": creds.plaintext, "key_prefix": creds.key.prefix}
        )
        return
    print_record("account", account_dict(creds.account))
    console.print(
        f"API key (shown once, store it now): [bold]{creds.plaintext}[/bold]", soft_wrap=True
    )


@accounts.command("create")
def create(
    username: Annotated[str, typer.Option(help="3 to 32 letters, digits, '_', '.' or '-'.")],
    email: Annotated[str | None, typer.Option()] = None,
    plan: PlanOpt = "free",
    balance: Annotated[str, typer.Option(help="Starting balance, e.g. 10 or 2.50.")] = "0",
    admin: Annotated[bool, typer.Option(help="May manage the server in the console.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an account and its first API key (the key is printed once)."""
    amount = exit_on_error(lambda: parse_amount(balance))
    creds = run_in_session(
        lambda s: AccountService(s).create_account(username, email, plan, amount, admin=admin)
    )
    _print_credentials(creds, as_json)


@accounts.command("list")
def list_accounts(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List accounts, oldest first."""
    rows = run_in_session(lambda s: AccountService(s).list(offset, limit))
    data = [account_dict(a) for a in rows]
    if as_json:
        print_json(data)
    else:
        columns = ["id", "username", "email", "plan", "balance", "rate_limit_per_minute"]
        print_table("accounts", columns, [[d[c] for c in columns] for d in data])


@accounts.command("set-plan")
def set_plan(
    account: Annotated[str, typer.Argument(help="Account id or username.")],
    plan: Annotated[str, typer.Argument(help="Plan name.")],
    rate_limit: Annotated[
        int | None, typer.Option(help="Requests per minute for this account (enterprise).")
    ] = None,
    monthly_chat_requests: Annotated[
        int | None, typer.Option(help="Chat requests per month for this account (enterprise).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an account to a plan, optionally with its own limits."""

    async def work(session: AsyncSession) -> Account:
        service = AccountService(session)
        return await service.set_plan(
            await service.get(account), plan, rate_limit, monthly_chat_requests
        )

    _print_account(run_in_session(work), as_json)


@accounts.command("top-up")
def top_up(
    account: Annotated[str, typer.Argument(help="Account id or username.")],
    amount: Annotated[str, typer.Argument(help="Amount to add, e.g. 5 or 0.25.")],
    as_json: JsonOpt = False,
) -> None:
    """Add to an account's balance."""
    value = exit_on_error(lambda: parse_amount(amount))

    async def work(session: AsyncSession) -> Account:
        service = AccountService(session)
        return await service.top_up(await service.get(account), value)

    _print_account(run_in_session(work), as_json)


@accounts.command("admin")
def make_admin(
    account: Annotated[str, typer.Argument(help="Account id or username.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take admin away instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make an account an admin of the console (accounts, plans, models, engine health)."""

    async def work(session: AsyncSession) -> Account:
        service = AccountService(session)
        return await service.set_admin(await service.get(account), not revoke)

    _print_account(run_in_session(work), as_json)


@accounts.command("password")
def set_password(
    account: Annotated[str, typer.Argument(help="Account id or username.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="The new password (asked for when not given; at least 10 characters).",
        ),
    ],
) -> None:
    """Set an account's console password (its console sessions end)."""

    async def work(session: AsyncSession) -> Account:
        found = await AccountService(session).get(account)
        await SignIn(session, timedelta(0)).set_password(found, password)
        return found

    found = run_in_session(work)
    console.print(f"password set for {found.username}; it can sign in at /console")


@accounts.command("invite")
def invite(as_json: JsonOpt = False) -> None:
    """Make a single-use sign-up code (for `PERSONAE_SIGNUP=invite`)."""
    code = run_in_session(lambda s: SignIn(s, timedelta(0)).create_invite()).code
    if as_json:
        print_json({"invite": code})
    else:
        console.print(f"invite code: [bold]{code}[/bold]", soft_wrap=True)


def _print_account(account: Account, as_json: bool) -> None:
    data = account_dict(account)
    if as_json:
        print_json(data)
    else:
        print_record("account", data)


@keys.command("create")
def create_key(
    account: Annotated[str, typer.Option(help="Account id or username.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create another API key for an account (printed once)."""

    async def work(session: AsyncSession) -> Credentials:
        service = AccountService(session)
        return await service.create_key(await service.get(account), name)

    creds = run_in_session(work)
    if as_json:
        print_json(
            {"account_id": creds.account.id, "prefix": creds.key.prefix, "api_key": creds.plaintext}
        )
    else:
        console.print(
            f"API key (shown once, store it now): [bold]{creds.plaintext}[/bold]", soft_wrap=True
        )


@keys.command("list")
def list_keys(
    account: Annotated[str, typer.Option(help="Account id or username.")],
    as_json: JsonOpt = False,
) -> None:
    """List an account's keys (prefixes only; secrets are never stored)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        service = AccountService(session)
        return [key_dict(k) for k in await service.list_keys(await service.get(account))]

    data = run_in_session(work)
    if as_json:
        print_json(data)
    else:
        print_table("keys", list(data[0]) if data else ["prefix"], [list(d.values()) for d in data])


@keys.command("revoke")
def revoke_key(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (its first 12 characters).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""
    key = run_in_session(lambda s: AccountService(s).revoke_key(prefix[:12]))
    if as_json:
        print_json(key_dict(key) | {"account_id": key.account_id})
    else:
        console.print(f"revoked {key.prefix} (account {key.account_id})", soft_wrap=True)


def key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "prefix": key.prefix,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
