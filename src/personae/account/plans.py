"""The default plans of the contract. They are seeded into the `plans` table when missing;
after that the table is the truth and operators change it with `personae plans set`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CharactersApi = Literal["none", "basic", "full"]
PLAN_NAMES = ("free", "pro", "standard", "premium", "enterprise")


@dataclass(frozen=True)
class PlanDefaults:
    name: str
    requests_per_minute: int
    chat_requests_per_month: int
    characters_api: CharactersApi
    webhooks: bool


DEFAULT_PLANS = (
    PlanDefaults("free", 5, 500, "none", False),
    PlanDefaults("pro", 100, 7_500, "basic", False),
    PlanDefaults("standard", 150, 7_500, "basic", False),
    PlanDefaults("premium", 750, 25_000, "full", True),
    # "Set per account": these are the starting values, overridden on the account.
    PlanDefaults("enterprise", 3_000, 250_000, "full", True),
)
