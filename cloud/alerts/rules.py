"""Alert rules, pure: facts in, findings out (docs/api.md "Alerts").

Each rule takes what was observed of one device or site (cloud.alerts.observe gathers it
from the store) and the territory's settings (boucle.registry `AlertSettings`), and returns
a `Finding` when the alert condition holds, else None. A finding's key (rule, subject) is
what the alert book matches an open alert on: while a rule keeps finding it, the alert
stays open; when it stops, the alert is resolved.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from boucle.registry import AlertSettings
from cloud.alerts.texts import message
from cloud.rounds import BinForecast
from cloud.timefmt import iso

RULES = ("bin_overflow", "device_silent", "data_gap", "base_load_high", "water_leak")


@dataclass(frozen=True)
class Finding:
    """An alert condition that holds now."""

    rule: str
    subject: str
    """The device or site it is about."""
    territory: str
    site: str
    message: str
    detail: dict = field(default_factory=dict)
    severity: str = "warning"

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


def finding(rule: str, subject: str, territory: str, site: str, detail: dict,
            severity: str = "warning") -> Finding:
    """A finding whose message is its rule's English text (cloud.alerts.texts) filled from its detail."""
    return Finding(rule, subject, territory, site, message(rule, subject, detail), detail, severity)


def bin_overflow(forecast: BinForecast, next_round_ts: int, threshold_pct: float, territory: str,
                 site: str) -> Finding | None:
    """A bin forecast to pass its threshold before its next planned collection."""
    reaches = forecast.reaches(threshold_pct)
    if reaches is None or reaches >= next_round_ts:
        return None
    return finding("bin_overflow", forecast.device, territory, site,
                   {"fill_pct": round(forecast.fill_pct, 1), "rate_pct_per_day": round(forecast.rate_pct_per_day, 2),
                    "reaches_threshold": iso(int(reaches)), "next_round": iso(next_round_ts),
                    "threshold_pct": threshold_pct},
                   "critical" if forecast.fill_pct >= threshold_pct else "warning")


def device_silent(device: str, interval_s: int, last_ts: int | None, now: float, settings: AlertSettings,
                  territory: str, site: str) -> Finding | None:
    """A device silent for longer than `silent_intervals` of its intervals (or never heard)."""
    limit = settings.silent_intervals * interval_s
    if last_ts is not None and now - last_ts <= limit:
        return None
    return finding("device_silent", device, territory, site,
                   {"last_reading": iso(last_ts) if last_ts is not None else None, "interval_s": interval_s,
                    "silent_intervals": settings.silent_intervals})


def data_gap(device: str, interval_s: int, times: Sequence[int], settings: AlertSettings, territory: str,
             site: str) -> Finding | None:
    """The longest hole between two of a device's readings (`times`, the lookback's, oldest
    first) when it is longer than `gap_intervals` intervals: readings that went missing
    although the device sends again (a silent one is device_silent's)."""
    longest, start = 0, None
    for a, b in itertools.pairwise(times):
        if b - a > longest:
            longest, start = b - a, a
    if start is None or longest <= settings.gap_intervals * interval_s:
        return None
    missing = longest // interval_s - 1
    return finding("data_gap", device, territory, site,
                   {"from": iso(start), "until": iso(start + longest), "gap_min": longest // 60,
                    "missing_readings": missing, "lookback_h": settings.gap_lookback_h})


def base_load_high(site: str, nights: Mapping[str, float], settings: AlertSettings, territory: str) -> Finding | None:
    """Last night's base load (mean W of the site's quietest night hour) above its usual
    level: more than `base_load_ratio` × and `base_load_min_w` over the median of up to
    `base_load_nights` nights before it (at least 3 of them)."""
    ordered = [nights[k] for k in sorted(nights)]
    if len(ordered) < 4:
        return None
    last, before = ordered[-1], ordered[-1 - settings.base_load_nights:-1]
    usual = statistics.median(before)
    if last <= usual * settings.base_load_ratio or last - usual < settings.base_load_min_w:
        return None
    night = max(nights)
    return finding("base_load_high", site, territory, site,
                   {"night": night, "base_load_w": round(last, 1), "usual_w": round(usual, 1),
                    "nights_compared": len(before), "ratio": settings.base_load_ratio})


def water_leak(site: str, nights_in_a_row: int, until: str, territory: str) -> Finding:
    """A site water.leak_suspected names (night flow above 0 for nights in a row)."""
    return finding("water_leak", site, territory, site,
                   {"nights_in_a_row": nights_in_a_row, "until": until}, "critical")
