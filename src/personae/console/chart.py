"""A bar chart as inline SVG, drawn on the server: no chart library and no script on the
page, and a table beside it says the same for screen readers."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
HEIGHT = 160
BOTTOM = 20  # room for the labels


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    peak: float
    width: int = WIDTH
    height: int = HEIGHT
    baseline: int = HEIGHT - BOTTOM


def bar_chart(points: list[tuple[str, float]], title: str) -> Chart:
    peak = max((value for _, value in points), default=0.0)
    slot = WIDTH / max(len(points), 1)
    usable = HEIGHT - BOTTOM - 10
    bars = []
    for i, (label, value) in enumerate(points):
        height = usable * value / peak if peak else 0.0
        bars.append(Bar(label, value, i * slot + slot * 0.15, HEIGHT - BOTTOM - height,
                        slot * 0.7, height))  # fmt: skip
    return Chart(title, bars, peak)
