"""Unit tests for the subtle bits: key format and checks, billing periods, money."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from personae.account import keys
from personae.account.money import from_micros, to_micros
from personae.account.service import month_period, next_month_start
from personae.timestamps import format_timestamp


def test_generated_keys_are_prefixed_unique_and_verifiable() -> None:
    made = {keys.generate_key().plaintext for _ in range(200)}
    assert len(made) == 200
    new = keys.generate_key()
    assert new.plaintext.startswith("prs_")
    assert len(new.plaintext) == keys.KEY_LEN
    assert keys.split_prefix(new.plaintext) == new.prefix
    assert keys.matches(new.plaintext, new.secret_hash)
    assert not keys.matches(new.plaintext[:-1] + "0", new.secret_hash)


@pytest.mark.parametrize("text", ["", "prs_short", "sk_" + "a" * 41, "prs_" + "a" * 41])
def test_split_prefix_refuses_what_cannot_be_a_key(text: str) -> None:
    assert keys.split_prefix(text) is None


@pytest.mark.parametrize(
    ("now", "period", "reset"),
    [
        (datetime(2026, 11, 23, 12, tzinfo=UTC), "2026-11", datetime(2026, 12, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "2026-12", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2027, 1, 1, tzinfo=UTC), "2027-01", datetime(2027, 2, 1, tzinfo=UTC)),
    ],
)
def test_billing_periods(now: datetime, period: str, reset: datetime) -> None:
    assert month_period(now) == period
    assert next_month_start(now) == reset


def test_money_round_trips_exactly() -> None:
    assert to_micros(Decimal("0.1")) + to_micros("0.2") == to_micros("0.3")
    assert from_micros(to_micros("12.345678")) == 12.345678


def test_timestamps_are_utc_with_z() -> None:
    assert (
        format_timestamp(datetime(2023, 9, 1, 12, 0, 0, 123456, tzinfo=UTC))
        == "2023-09-01T12:00:00.123Z"
    )
