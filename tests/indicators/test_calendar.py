"""Opening hours as UTC intervals across DST changes, and annualisation over leap years."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from cloud.indicators.calendar import open_intervals, years_in
from tests.indicators.builders import paris, utc

PARIS = ZoneInfo("Europe/Paris")


def test_spring_forward_day_is_23_hours_and_shifts_opening():
    # Sunday 2026-03-29: clocks go 02:00 → 03:00 local
    start, end = paris("2026-03-29T00:00"), paris("2026-03-30T00:00")
    assert end - start == 23 * 3600
    spans = list(open_intervals("Su 00:00-12:00", PARIS, start, end))
    assert spans == [(utc("2026-03-28T23:00"), utc("2026-03-29T10:00"))]  # 11 real hours


def test_fall_back_day_is_25_hours():
    start, end = paris("2026-10-25T00:00"), paris("2026-10-26T00:00")
    assert end - start == 25 * 3600
    spans = list(open_intervals("Su 00:00-12:00", PARIS, start, end))
    assert spans == [(utc("2026-10-24T22:00"), utc("2026-10-25T11:00"))]  # 13 real hours


def test_weekly_rules_split_spans_and_closed_days():
    # Monday 2026-05-04 .. Sunday 2026-05-10, summer time (UTC+2)
    start, end = paris("2026-05-04T00:00"), paris("2026-05-11T00:00")
    spans = list(open_intervals("Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00", PARIS, start, end))
    assert len(spans) == 5 * 2 + 1
    assert spans[0] == (utc("2026-05-04T06:00"), utc("2026-05-04T10:00"))
    assert spans[-1] == (utc("2026-05-09T07:00"), utc("2026-05-09T10:00"))
    assert sum(e - s for s, e in spans) == (5 * 8 + 3) * 3600


def test_always_open_runs_to_midnight_and_is_clipped_to_the_period():
    start, end = paris("2026-05-04T06:00"), paris("2026-05-06T00:00")
    spans = list(open_intervals("24/7", PARIS, start, end))
    assert spans == [(start, end)]  # consecutive days merge into one span


def test_leap_year_annualisation():
    assert years_in(paris("2028-01-01T00:00"), paris("2029-01-01T00:00"), PARIS) == pytest.approx(1.0)
    assert years_in(paris("2028-02-29T00:00"), paris("2028-03-01T00:00"), PARIS) == pytest.approx(1 / 366)
    assert years_in(paris("2027-02-28T00:00"), paris("2027-03-01T00:00"), PARIS) == pytest.approx(1 / 365)


def test_annualisation_across_new_year_weighs_each_year_by_its_length():
    start, end = paris("2027-12-31T00:00"), paris("2028-01-02T00:00")
    assert years_in(start, end, PARIS) == pytest.approx(1 / 365 + 1 / 366)
