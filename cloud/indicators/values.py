"""What an indicator computation takes and returns: period, scope and value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EARLIEST = 0  # 1970-01-01T00:00Z
LATEST = 4102444800  # 2100-01-01T00:00Z
MAX_PERIOD_S = 20 * 366 * 86400  # indicators work on 15-min intervals: bound the arrays


SIGNIFICANT_DIGITS = 15
"""Digits an indicator value keeps: float sums leave noise in the 16th-17th digit
(0.1 + 0.2 kWh is 0.30000000000000004); fewer digits would round away real differences
between two ways of computing the same value."""


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant digits (a float again; inf and NaN as they are)."""
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class Period:
    """A half-open time range [start, end) in UTC Unix seconds, 1970 to 2100, 20 years at most."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"period end {self.end} is not after its start {self.start}")
        if self.start < EARLIEST or self.end > LATEST:
            raise ValueError(f"period [{self.start}, {self.end}) is outside 1970-2100 "
                             "(UTC Unix seconds): check the unit (seconds, not milliseconds)")
        if self.end - self.start > MAX_PERIOD_S:
            raise ValueError("period longer than 20 years: ask for a shorter one")

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Scope:
    """What the indicators are about: one or more sites, a territory, or several territories."""

    kind: Literal["site", "territory", "territories"]
    ids: tuple[str, ...]


@dataclass(frozen=True)
class IndicatorValue:
    """One computed indicator, with what is needed to trust it (formula, coverage, reference)."""

    id: str
    value: float | None
    unit: str
    period: Period
    formula: str
    coverage: float
    """0..1, share of expected readings actually received from the devices it uses."""
    reference: dict | None = None
    standing: str | None = None
    """"better" | "between" | "worse" relative to the reference's limit and target."""
    breakdown: dict | None = None
    name: str = ""
    caveats: list[str] = field(default_factory=list)
