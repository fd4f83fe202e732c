"""Counter and bin accounting (boucle.accounting): hand cases and properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from boucle.accounting import counter_deltas, fill_emptyings, per_interval, waste_events

# --- counters ------------------------------------------------------------------------


def test_first_reading_is_only_a_baseline():
    d = counter_deltas([500], [0])
    assert d.total_wh == 0 and d.resets == 0 and d.rejected == 0


def test_deltas_between_consecutive_readings():
    d = counter_deltas([100, 110, 125, 125], [0, 60, 120, 180])
    assert list(d.deltas_wh) == [0, 10, 15, 0]
    assert d.total_wh == 25


def test_reset_counts_new_value_in_full():
    # 100 → 130 (+30), reboot: counter restarts, reads 7 (+7), then 20 (+13)
    d = counter_deltas([100, 130, 7, 20], [0, 60, 120, 180])
    assert d.total_wh == 30 + 7 + 13
    assert d.resets == 1


def test_delta_above_rated_power_is_rejected_and_counted():
    # 1 kW over 60 s = 16.7 Wh; limit 1.5 × 16.7 + 1 = 26 Wh
    d = counter_deltas([0, 20, 10_020, 10_040], [0, 60, 120, 180], rated_power_w=1000)
    assert d.rejected == 1
    assert d.total_wh == 20 + 20
    assert list(d.accepted) == [False, True, False, True]


def test_rate_limit_edge_is_accepted():
    ok = counter_deltas([0, 26], [0, 60], rated_power_w=1000)
    over = counter_deltas([0, 27], [0, 60], rated_power_w=1000)
    assert ok.total_wh == 26 and ok.rejected == 0
    assert over.total_wh == 0 and over.rejected == 1


def test_long_gap_allows_proportional_delta():
    # 1 kW for 2 h while offline: 2,000 Wh in one delta is physical
    d = counter_deltas([0, 2000], [0, 7200], rated_power_w=1000)
    assert d.total_wh == 2000 and d.rejected == 0


increments = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60)


def _series(incs: list[int], start: int = 1000) -> tuple[list[int], list[int]]:
    values = list(np.cumsum([start, *incs]))
    times = [60 * i for i in range(len(values))]
    return values, times


@given(increments)
def test_sum_of_deltas_without_reset_is_last_minus_first(incs):
    values, times = _series(incs)
    assert counter_deltas(values, times).total_wh == values[-1] - values[0]


@given(increments, st.data())
def test_splitting_a_sequence_keeps_the_total(incs, data):
    values, times = _series(incs)
    cut = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    # the second half starts at the cut reading, which is its baseline
    first = counter_deltas(values[: cut + 1], times[: cut + 1])
    second = counter_deltas(values[cut:], times[cut:])
    assert first.total_wh + second.total_wh == counter_deltas(values, times).total_wh


@given(increments, st.data())
def test_a_reset_loses_nothing_after_the_restart(incs, data):
    values, times = _series(incs)
    cut = data.draw(st.integers(min_value=1, max_value=len(values) - 1))
    # device restarted just before reading `cut`: its counter begins again from 0
    restarted = values[:cut] + [v - values[cut - 1] for v in values[cut:]]
    d = counter_deltas(restarted, times)
    # whenever the counter visibly went down, the total is the true energy
    if restarted[cut] < restarted[cut - 1]:
        assert d.resets == 1
        assert d.total_wh == values[-1] - values[0]


@given(st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=40),
       st.integers(min_value=100, max_value=100_000))
def test_deltas_within_rated_power_never_rejected(incs, rated):
    # increments at most rated × 60 s are always physical
    limit = rated * 60 / 3600
    incs = [min(i, int(limit)) for i in incs]
    values, times = _series(incs)
    d = counter_deltas(values, times, rated_power_w=rated)
    assert d.rejected == 0 and d.total_wh == values[-1] - values[0]


# --- bins ----------------------------------------------------------------------------


def test_deposits_emptying_and_new_deposits():
    t = list(range(0, 700, 60))
    w = [0, 2000, 2050, 5000, 5000, 9000, 200, 200, 1500, 1500, 3000, 3000]
    ev = waste_events(t[: len(w)], w)
    # deposits: 2000, (50 is noise), 2950 (5000 − 2050 accepted at 2000 → +3000), 4000,
    # emptying at 9000 → 200 (below max(500, 900)): the 200 g above tare after it is a new
    # deposit (>= the 100 g band); then +1300, +1500
    assert ev.emptyings == [(360, 9000.0)]
    assert list(ev.deposits_g) == [0, 2000, 0, 3000, 0, 4000, 200, 0, 1300, 0, 1500, 0]
    assert ev.deposited_g == 2000 + 3000 + 4000 + 200 + 1300 + 1500
    assert ev.collected_g == 9000


def test_noise_within_hysteresis_band_adds_nothing():
    w = [1000, 1060, 990, 1050, 1099, 1020]
    assert waste_events(range(len(w)), w).deposited_g == 0


def test_small_steps_count_once_they_pass_the_band():
    # 60 g steps: the level is accepted when it is 100 g or more above the last accepted one
    w = [0, 60, 120, 180, 240]
    ev = waste_events(range(len(w)), w)
    assert list(ev.deposits_g) == [0, 0, 120, 0, 120]


def test_emptying_seen_halfway_reports_the_full_mass():
    w = [40_000, 40_000, 20_000, 300]
    ev = waste_events(range(len(w)), w)
    assert ev.emptyings == [(3, 40_000.0)]


def test_after_emptying_weight_above_tare_is_a_new_deposit():
    # reading missed during a gap: emptied then refilled to 2 kg before the next reading
    w = [40_000, 2_000]
    ev = waste_events([0, 3600], w)
    assert ev.emptyings == [(3600, 40_000.0)]
    assert ev.deposited_g == 2_000


def test_partial_removal_is_not_an_emptying_nor_a_deposit():
    w = [10_000, 6_000, 6_000, 7_000]
    ev = waste_events(range(len(w)), w)
    assert ev.emptyings == []
    assert ev.deposited_g == 1_000


def test_fill_emptyings():
    f = [10, 40, 80, 96, 5, 20]
    assert fill_emptyings(range(len(f)), f) == [(4, 96.0)]


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=50))
def test_monotonic_filling_deposits_at_most_the_rise(incs):
    w = list(np.cumsum([0, *incs]))
    ev = waste_events(range(len(w)), w)
    assert ev.emptyings == []
    assert w[-1] - 100 < ev.deposited_g <= w[-1] or w[-1] < 100


weights = st.lists(st.integers(min_value=0, max_value=60_000), min_size=2, max_size=80)


@given(weights, st.data())
def test_waste_tracking_resumes_from_its_state(levels, data):
    # what the gateway does window by window equals one pass over the whole series
    cut = data.draw(st.integers(min_value=1, max_value=len(levels) - 1))
    times = list(range(len(levels)))
    whole = waste_events(times, levels)
    first = waste_events(times[:cut], levels[:cut])
    rest = waste_events(times[cut:], levels[cut:], state=first.state)
    assert first.deposited_g + rest.deposited_g == whole.deposited_g
    assert first.emptyings + rest.emptyings == whole.emptyings
    assert rest.state == whole.state


def test_per_interval_sums_by_reading_time():
    starts, sums, counts = per_interval([0, 60, 899, 900, 2700, 2760], [1, 2, 3, 4, 5, 6], 900)
    assert starts.tolist() == [0, 900, 2700]
    assert sums.tolist() == [6, 4, 11]
    assert counts.tolist() == [3, 1, 2]


@given(st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 1000)), max_size=50),
       st.sampled_from([60, 900, 3600]))
def test_per_interval_keeps_the_total(rows, step):
    rows.sort()
    times, amounts = [t for t, _ in rows], [a for _, a in rows]
    starts, sums, counts = per_interval(times, amounts, step)
    assert sums.sum() == sum(amounts)
    assert counts.sum() == len(rows)
    assert all(s % step == 0 for s in starts.tolist())
