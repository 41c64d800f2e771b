"""`personae plans …`: plans are data; operators change them here, without code."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from personae.account.plans import CharactersApi
from personae.account.service import AccountService
from personae.cli.common import JsonOpt, print_json, print_record, print_table, run_in_session
from personae.models import Plan

plans = typer.Typer(help="List and edit plans.", no_args_is_help=True)


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "requests_per_minute": plan.requests_per_minute,
        "chat_requests_per_month": plan.chat_requests_per_month,
        "characters_api": plan.characters_api,
        "webhooks": plan.webhooks,
    }


@plans.command("list")
def list_plans(as_json: JsonOpt = False) -> None:
    """List plans and their limits."""
    data = [plan_dict(p) for p in run_in_session(lambda s: AccountService(s).list_plans())]
    if as_json:
        print_json(data)
    else:
        print_table("plans", list(data[0]), [list(d.values()) for d in data])


@plans.command("set")
def set_plan(
    name: Annotated[str, typer.Argument(help="Plan name.")],
    requests_per_minute: Annotated[int | None, typer.Option(min=1)] = None,
    chat_requests_per_month: Annotated[int | None, typer.Option(min=0)] = None,
    characters_api: Annotated[
        CharactersApi | None, typer.Option(help="none, basic or full.")
    ] = None,
    webhooks: Annotated[bool | None, typer.Option("--webhooks/--no-webhooks")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a plan's limits; every account on it follows at once."""
    plan = run_in_session(
        lambda s: AccountService(s).update_plan(
            name, requests_per_minute, chat_requests_per_month, characters_api, webhooks
        )
    )
    data = plan_dict(plan)
    if as_json:
        print_json(data)
    else:
        print_record("plan", data)
