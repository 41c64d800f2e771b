"""An account for benchmarks that no plan limit gets in the way of."""

from __future__ import annotations

from decimal import Decimal

from personae.account.service import AccountService
from personae.state import AppState


async def unlimited_key(state: AppState) -> str:
    """The API key of an enterprise account with limits far above any benchmark's load."""
    async with state.sessionmaker.begin() as session:
        service = AccountService(session)
        credentials = await service.create_account("bench", None, "enterprise", Decimal(0))
        await service.set_plan(
            credentials.account,
            "enterprise",
            rate_limit_per_minute=10_000_000,
            chat_requests_per_month=10_000_000,
        )
    return credentials.plaintext
