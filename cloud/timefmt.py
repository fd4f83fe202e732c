"""UTC instants as the API writes them (ISO 8601 with Z)."""

from __future__ import annotations

from datetime import UTC, datetime

from cloud.indicators import Period
from cloud.models import PeriodOut


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def period_out(period: Period) -> PeriodOut:
    return PeriodOut(**{"from": iso(period.start), "to": iso(period.end)})
