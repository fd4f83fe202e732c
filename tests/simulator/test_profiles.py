"""Profiles produce the daily, weekly and seasonal shapes documented in docs/simulator.md."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from boucle.registry import parse_opening_hours
from simulator.models.energy import (
    building_power_w,
    heating_factor,
    pv_power_w,
    solar_elevation_deg,
)
from simulator.profiles import is_holiday, load_profiles

PARIS = ZoneInfo("Europe/Paris")
SCHOOL = parse_opening_hours("Mo,Tu,Th,Fr 08:20-16:30; We 08:20-11:30")
BAKERY = parse_opening_hours("Tu-Sa 06:30-19:30; Su 07:00-12:30")
LYON = (45.7768, 4.7755)


@pytest.fixture(scope="module")
def profiles():
    return load_profiles()


def at(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=PARIS)


def test_a_school_draws_most_on_a_weekday_morning(profiles):
    tuesday_10 = building_power_w(profiles, "school", SCHOOL, at(2025, 11, 25, 10))
    tuesday_03 = building_power_w(profiles, "school", SCHOOL, at(2025, 11, 25, 3))
    sunday_10 = building_power_w(profiles, "school", SCHOOL, at(2025, 11, 23, 10))
    wednesday_15 = building_power_w(profiles, "school", SCHOOL, at(2025, 11, 26, 15))  # closed afternoon
    assert tuesday_10 > 5 * tuesday_03
    # closed: the base load only (heating changes a little from day to day)
    assert tuesday_03 == pytest.approx(sunday_10, rel=0.03) == pytest.approx(wednesday_15, rel=0.03)


def test_school_holidays_and_public_holidays_close_the_school(profiles):
    in_term = at(2025, 11, 25, 10)
    toussaint = at(2025, 10, 28, 10)          # a Tuesday in the Toussaint period
    christmas = at(2026, 1, 2, 10)            # a Friday in the period spanning the new year
    armistice = at(2025, 11, 11, 10)          # public holiday, a Tuesday
    assert not is_holiday(profiles, in_term, "school")
    assert is_holiday(profiles, toussaint, "school") and is_holiday(profiles, christmas, "school")
    assert not is_holiday(profiles, toussaint, "bakery")  # school holidays are for schools only
    open_load = building_power_w(profiles, "school", SCHOOL, in_term)
    for day in (toussaint, armistice):
        assert building_power_w(profiles, "school", SCHOOL, day) < open_load / 5


def test_start_up_peak_in_the_first_quarter_hour(profiles):
    peak = building_power_w(profiles, "school", SCHOOL, at(2025, 11, 25, 8, 25))
    later = building_power_w(profiles, "school", SCHOOL, at(2025, 11, 25, 9, 30))
    assert peak > later * 1.1


def test_a_bakery_starts_its_ovens_before_dawn(profiles):
    night = building_power_w(profiles, "bakery", BAKERY, at(2025, 11, 25, 1))
    ovens = building_power_w(profiles, "bakery", BAKERY, at(2025, 11, 25, 4))  # opens 06:30
    monday = building_power_w(profiles, "bakery", BAKERY, at(2025, 11, 24, 4))   # closed on Monday
    assert ovens > 3 * night
    assert monday == pytest.approx(night)
    assert night > 0  # the cold rooms run all night


def test_heating_peaks_in_winter_and_stops_in_summer(profiles):
    assert heating_factor(profiles, at(2026, 1, 15, 12)) == pytest.approx(1 + profiles.general["heating_gain"])
    assert heating_factor(profiles, at(2026, 7, 15, 12)) == pytest.approx(1.0)
    winter = building_power_w(profiles, "fablab", parse_opening_hours("Tu-Fr 10:00-19:00"), at(2026, 1, 13, 14))
    summer = building_power_w(profiles, "fablab", parse_opening_hours("Tu-Fr 10:00-19:00"), at(2026, 6, 16, 14))
    assert winter > 1.4 * summer


def test_pv_is_zero_at_night_and_peaks_near_solar_noon(profiles):
    day = int(at(2026, 6, 21, 0).timestamp())
    output = {t: pv_power_w(profiles, 9000, *LYON, t, cloud=0.0) for t in range(day, day + 86400, 300)}
    assert all(p == 0 for t, p in output.items() if solar_elevation_deg(*LYON, t) <= 0)
    assert output[day + 2 * 3600] == 0  # 02:00 local
    peak = max(output, key=output.get)
    solar_noon = day + 12 * 3600 + 2 * 3600 - int(LYON[1] * 240)  # UTC 12:00 - 4 min per degree east, +2 h CEST
    assert abs(peak - solar_noon) <= 15 * 60
    assert 0.6 * 9000 < output[peak] < 9000


def test_clouds_cut_pv_and_winter_sun_is_weaker(profiles):
    june_noon = int(at(2026, 6, 21, 13, 40).timestamp())
    december_noon = int(at(2025, 12, 21, 12, 40).timestamp())
    clear = pv_power_w(profiles, 9000, *LYON, june_noon, cloud=0.0)
    overcast = pv_power_w(profiles, 9000, *LYON, june_noon, cloud=1.0)
    assert overcast == pytest.approx(0.25 * clear)
    assert pv_power_w(profiles, 9000, *LYON, december_noon, cloud=0.0) < 0.7 * clear
