"""Server-side accounting of device series: energy counter deltas and waste bin events.

Pure functions on arrays of one device's readings, oldest first. The cloud indicators and
the gateway rollups both use them, so a number means the same thing everywhere.

Counters (`energy_wh`): the first reading is only a baseline; each later reading adds its
delta against the previous reading. A counter that goes down restarted from zero (device
reset), so its new value counts in full (Prometheus `increase()` semantics). A delta above
what the device can physically draw, rated_power_w × Δt × RATE_SLACK + RATE_SLACK_WH, is a
glitch: it is rejected (adds nothing) and counted as rejected.

Bin weights (`weight_g`): deposits are rises of the weight past a hysteresis band of
`noise_g` around the last accepted level; an emptying is a drop to near tare; the mass
collected at an emptying is the top of the weight just before the drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RATE_SLACK = 1.5
"""A delta may exceed rated power × Δt by 50%: meters round, clocks drift, ratings are nominal."""
RATE_SLACK_WH = 1.0
"""Plus one watt-hour: the counter resolution, so a 1 Wh step at Δt = 0 is never a glitch."""

NOISE_G = 100.0
"""Hysteresis band of bin scales: load cells drift and wind/temperature move them by tens of grams."""
NEAR_TARE_G = 500.0
NEAR_TARE_FRACTION = 0.10
"""An emptying ends at or below max(NEAR_TARE_G, 10% of the weight before): residue sticks to bins."""


@dataclass(frozen=True)
class CounterDeltas:
    """Per-reading deltas of a cumulative counter (index 0 is the baseline: delta 0)."""

    deltas_wh: np.ndarray
    """float64, same length as the input; rejected deltas are 0."""
    accepted: np.ndarray
    """bool, False for the baseline and for rejected deltas."""
    resets: int
    rejected: int

    @property
    def total_wh(self) -> float:
        return float(self.deltas_wh.sum())


def counter_deltas(
    values: Sequence[float] | np.ndarray,
    times: Sequence[int] | np.ndarray,
    rated_power_w: float | None = None,
    slack: float = RATE_SLACK,
    slack_wh: float = RATE_SLACK_WH,
) -> CounterDeltas:
    """Reset-aware deltas of a cumulative Wh counter, with the physical rate check.

    `values` and `times` are one device's readings oldest first; the first is the baseline.
    Without `rated_power_w` no delta is rejected.
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if v.shape != t.shape:
        raise ValueError(f"values and times differ in length ({v.size} vs {t.size})")
    deltas = np.zeros_like(v)
    accepted = np.zeros(v.shape, dtype=bool)
    if v.size < 2:
        return CounterDeltas(deltas, accepted, 0, 0)
    raw = np.diff(v)
    reset = raw < 0
    raw = np.where(reset, v[1:], raw)
    ok = np.ones(raw.shape, dtype=bool)
    if rated_power_w is not None:
        dt = np.maximum(np.diff(t), 0.0)
        ok = raw <= rated_power_w * dt / 3600.0 * slack + slack_wh
    deltas[1:] = np.where(ok, raw, 0.0)
    accepted[1:] = ok
    return CounterDeltas(deltas, accepted, int(reset.sum()), int((~ok).sum()))


@dataclass(frozen=True)
class LevelState:
    """Where the level tracking stands after a reading: enough to go on with the next batch
    (the gateway rolls windows up incrementally without re-reading history)."""

    accepted: float
    """Last accepted level (the hysteresis reference)."""
    prev: float
    """Last reading's level."""
    top: float
    """Top of the current run of falling readings."""


@dataclass(frozen=True)
class LevelEvents:
    """What a container's level series says: deposits and emptyings."""

    deposited: float
    """Sum of accepted rises (same unit as the levels)."""
    deposits: np.ndarray
    """Per-reading deposited amount (a baseline reading has 0)."""
    emptyings: list[tuple[int, float]] = field(default_factory=list)
    """(ts of the first reading after the drop, level just before the drop)."""
    state: LevelState | None = None
    """State after the last reading (None for an empty series without a given state)."""
    tops: list[int] = field(default_factory=list)
    """Per emptying, the index of the reading whose level was the top before the drop
    (-1 when the top came from the given `state`)."""


@dataclass(frozen=True)
class WasteEvents:
    """Deposits and emptyings of a bin from its weight series."""

    deposited_g: float
    deposits_g: np.ndarray
    emptyings: list[tuple[int, float]]
    """(ts of the reading after the drop, weight in g just before it = mass collected)."""
    state: LevelState | None = None
    tops: list[int] = field(default_factory=list)
    """Per emptying, the index of the reading at the top before the drop (LevelEvents.tops)."""

    @property
    def collected_g(self) -> float:
        return float(sum(w for _, w in self.emptyings))


def level_events(
    times: Sequence[int] | np.ndarray,
    levels: Sequence[float] | np.ndarray,
    noise: float,
    near_empty: float,
    near_empty_fraction: float,
    state: LevelState | None = None,
) -> LevelEvents:
    """Deposits and emptyings in a level series (weight in g or fill in %), oldest first.

    Without `state` the first reading is the baseline; with the `state` of the previous
    batch every reading is new, and the result is the same as over the joined series.

    Hysteresis: the level counts as changed only when it moves `noise` or more from the
    last accepted level; a rise adds a deposit, a fall re-baselines without counting.
    An emptying is a fall of at least `noise` ending at or below
    max(near_empty, near_empty_fraction × level before); the level before is the top of
    the run of falling readings (an emptying seen halfway still reports the full mass).
    After an emptying the level above tare (when at least `noise`) counts as new deposits.
    """
    t = np.asarray(times).tolist()
    x = np.asarray(levels, dtype=np.float64).tolist()  # plain floats: this loop is the hot path
    deposits = [0.0] * len(x)
    emptyings: list[tuple[int, float]] = []
    tops: list[int] = []
    if state is not None:
        accepted, prev, top = state.accepted, state.prev, state.top
        first, top_i = 0, -1
    elif x:
        accepted = prev = top = x[0]
        first, top_i = 1, 0
    else:
        return LevelEvents(0.0, np.zeros(0), emptyings)
    for i in range(first, len(x)):
        w = x[i]
        if w < prev:
            if prev > top:
                top, top_i = prev, i - 1
        else:
            top, top_i = w, i
        if top - w >= noise and w <= max(near_empty, near_empty_fraction * top):
            emptyings.append((int(t[i]), top))
            tops.append(top_i)
            deposits[i] = w if w >= noise else 0.0
            accepted = top = w
            top_i = i
        elif w - accepted >= noise:
            deposits[i] = w - accepted
            accepted = w
        elif accepted - w >= noise:
            accepted = w
        prev = w
    per_reading = np.array(deposits)
    return LevelEvents(float(per_reading.sum()), per_reading, emptyings, LevelState(accepted, prev, top), tops)


def waste_events(
    times: Sequence[int] | np.ndarray,
    weights_g: Sequence[float] | np.ndarray,
    noise_g: float = NOISE_G,
    near_tare_g: float = NEAR_TARE_G,
    near_tare_fraction: float = NEAR_TARE_FRACTION,
    state: LevelState | None = None,
) -> WasteEvents:
    """Deposited mass and emptyings of a bin from its net weight series.

    The first reading is the baseline, unless `state` (from the previous batch) is given.
    """
    ev = level_events(times, weights_g, noise_g, near_tare_g, near_tare_fraction, state)
    return WasteEvents(ev.deposited, ev.deposits, ev.emptyings, ev.state, ev.tops)


def per_interval(times: Sequence[int] | np.ndarray, amounts: Sequence[float] | np.ndarray,
                 step_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum per-reading amounts (accepted Wh, deposited g) into step-long intervals aligned on
    the epoch, each amount in the interval of its reading's ts: (starts, sums, readings).
    This is the shape of a rollup row; intervals without readings are absent."""
    t = np.asarray(times, dtype=np.int64)
    a = np.asarray(amounts, dtype=np.float64)
    if t.size == 0:
        return t, a, t
    keys = t - t % step_s
    order = np.argsort(keys, kind="stable")
    keys, a = keys[order], a[order]
    starts, index, counts = np.unique(keys, return_index=True, return_counts=True)
    return starts, np.add.reduceat(a, index), counts


FILL_NOISE_PCT = 5.0
FILL_NEAR_EMPTY_PCT = 15.0
FILL_NEAR_EMPTY_FRACTION = 0.25
"""Ultrasonic fill readings jump by several % (bags, surface shape): wider bands than scales."""


def fill_events(
    times: Sequence[int] | np.ndarray, fill_pct: Sequence[float] | np.ndarray,
    state: LevelState | None = None,
) -> LevelEvents:
    """Level events of a fill series (% bands); `state` resumes from a previous batch."""
    return level_events(times, fill_pct, FILL_NOISE_PCT, FILL_NEAR_EMPTY_PCT,
                        FILL_NEAR_EMPTY_FRACTION, state)


def fill_emptyings(
    times: Sequence[int] | np.ndarray, fill_pct: Sequence[float] | np.ndarray
) -> list[tuple[int, float]]:
    """Emptyings in a fill-level series: (ts after the drop, fill % just before it)."""
    return fill_events(times, fill_pct).emptyings
