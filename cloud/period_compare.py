"""Comparisons with another period (`?compare=previous|year` on the indicator sets).

For each indicator: the other period's value, the change (absolute and in % of the other
value) and whether it is an improvement, by the direction configured beside the
indicator's reference (cloud/references.toml, `[indicators."id"] direction`). Pure
functions: the routes compute both sets the usual way (cached) and join them here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from cloud.indicators import Period
from cloud.indicators.references import References
from cloud.models import IndicatorOut, IndicatorSet, PeriodChange

CompareTo = Literal["previous", "year"]


def other_period(period: Period, compare: CompareTo) -> Period:
    """previous: the period of the same length just before; year: the same dates a year
    earlier (29 February becomes the 28th)."""
    if compare == "previous":
        return Period(period.start - period.seconds, period.start)
    return Period(_year_before(period.start), _year_before(period.end))


def _year_before(ts: int) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    day = 28 if (dt.month, dt.day) == (2, 29) else dt.day
    return int(dt.replace(year=dt.year - 1, day=day).timestamp())


def change(value: float | None, other: float | None, direction: str | None) -> dict:
    """delta, delta_pct (None when the other value is 0 or either is missing) and
    improved (None when unchanged, missing, or no direction is configured)."""
    if value is None or other is None:
        return {"value": other, "delta": None, "delta_pct": None, "improved": None}
    delta = value - other
    pct = delta / abs(other) * 100 if other else None
    improved = None if not delta or direction not in ("lower", "higher") else (delta < 0) == (direction == "lower")
    return {"value": other, "delta": delta, "delta_pct": pct, "improved": improved}


def with_comparison(current: IndicatorSet, other: IndicatorSet, compare: CompareTo,
                    references: References) -> IndicatorSet:
    """`current` with each indicator's change against the same indicator in `other`."""
    before = {v.id: v for v in other.indicators}
    out = []
    for v in current.indicators:
        was = before.get(v.id)
        direction = references.direction(v.id)
        got = change(v.value, was.value if was else None, direction)
        out.append(IndicatorOut(**{**v.model_dump(by_alias=True), "change": PeriodChange(
            compare=compare, period=other.period, direction=direction,
            coverage=was.coverage if was else 0.0, **got)}))
    return current.model_copy(update={"indicators": out, "compared_with": other.period})

