"""Money is kept as integer micro-units (1 = 0.000001 of the currency) so that sums are exact
on every database; these convert at the edges."""

from __future__ import annotations

from decimal import Decimal

MICROS = 1_000_000


def to_micros(amount: Decimal | float | str) -> int:
    return int((Decimal(str(amount)) * MICROS).to_integral_value())


def from_micros(micros: int) -> float:
    return float(Decimal(micros) / MICROS)
