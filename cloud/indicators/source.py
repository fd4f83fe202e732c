"""The data path of the indicators: one device's readings over a period, as numpy arrays.

Everything the indicators read goes through a loader: `load_series` here reads raw readings;
`windows.load_windows` and `packs.load_packs` read the gateway's rollups, with the same shape.
A `Source` loads each device once per computation and serves sub-periods by slicing
(the per-step series of `indicator_series`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from boucle.accounting import WasteEvents
from boucle.registry import Device
from boucle.storage import Store
from cloud.indicators.values import Period

ENERGY_FIELDS = ("energy_wh",)
WASTE_FIELDS = ("weight_g", "fill_pct")


def fields_of(device: Device) -> tuple[str, ...]:
    """The reading fields the indicators use for a device of this kind."""
    return ENERGY_FIELDS if device.kind == "energy" else WASTE_FIELDS


@dataclass(frozen=True)
class DeviceSeries:
    """A device's readings over a period, oldest first.

    When `baseline` is true, index 0 is the last reading before the period (the baseline
    for counter deltas and bin levels); the others have start <= ts < end.
    """

    device: str
    times: np.ndarray
    """int64 UTC seconds."""
    fields: dict[str, np.ndarray]
    """float64 per field, NaN where a reading lacks the field."""
    baseline: bool
    readings: int | None = None
    """Readings received in the period when the arrays are not the readings themselves
    (a rollup: one point per interval); None means count the points."""
    waste: WasteEvents | None = None
    """A scale bin's deposits and emptyings, when a rollup already accounted them."""
    fill_emptyings: list[tuple[int, float]] | None = None
    """A bin's emptyings as (ts, fill % before), when a rollup already found them."""
    emptied: np.ndarray | None = dataclass_field(default=None, repr=False, compare=False)
    """The same emptyings as `waste` or `fill_emptyings`, as (ts, level before) rows, when a
    rollup has them as an array already."""
    refine: Callable[[], DeviceSeries] | None = dataclass_field(default=None, repr=False, compare=False)
    """A meter's 15-min series, when this one is coarser (day points: exact totals only)."""
    slots_wh: np.ndarray | None = dataclass_field(default=None, repr=False, compare=False)
    """A meter's Wh per 15-min interval from its first point, when its points are exactly
    those intervals' edges (a rollup with a window in each): the indicators' buckets as is.
    Without energy_wh in `fields`, its cumulative is made from them when asked for."""
    _fields_cache: dict[str, tuple[np.ndarray, np.ndarray]] = dataclass_field(
        default_factory=dict, repr=False, compare=False)

    @property
    def rollup(self) -> bool:
        return self.readings is not None

    @property
    def received(self) -> int:
        """Readings inside the period (the baseline excluded)."""
        if self.readings is not None:
            return self.readings
        return int(self.times.size - (1 if self.baseline else 0))

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) of the readings that carry `name`, baseline included."""
        if name not in self._fields_cache:
            values = self.fields.get(name)
            if values is None and name == "energy_wh" and self.slots_wh is not None:
                values = np.concatenate([[0.0], np.cumsum(self.slots_wh)])
            if values is None:
                self._fields_cache[name] = (self.times[:0], np.zeros(0))
            else:
                keep = ~np.isnan(values)
                self._fields_cache[name] = (self.times, values) if keep.all() else (self.times[keep], values[keep])
        return self._fields_cache[name]

    def within(self, period: Period) -> DeviceSeries:
        """The same device over a sub-period, with its own baseline (by slicing, no query).

        Raw readings only: a rollup loader is asked again for each sub-period instead."""
        first = int(np.searchsorted(self.times, period.start, side="left"))
        last = int(np.searchsorted(self.times, period.end, side="left"))
        lo = max(first - 1, 0)
        return DeviceSeries(
            self.device, self.times[lo:last],
            {k: v[lo:last] for k, v in self.fields.items()}, first > 0,
        )


def load_series(
    store: Store, devices: Sequence[Device], period: Period
) -> dict[str, DeviceSeries]:
    """Each device's readings over `period` (plus its baseline), from raw readings."""
    out: dict[str, DeviceSeries] = {}
    for device in devices:
        names = fields_of(device)
        rows = store.readings(device.id, period.start, period.end, names)
        times = np.fromiter((r.ts for r in rows), dtype=np.int64, count=len(rows))
        fields = {
            name: np.array([np.nan if r.values.get(name) is None else r.values[name] for r in rows],
                           dtype=np.float64)
            for name in names
        }
        out[device.id] = DeviceSeries(device.id, times, fields, bool(rows) and rows[0].ts < period.start)
    return out


def series_from_rollups(
    device: str,
    step_s: int,
    starts: Sequence[int] | np.ndarray,
    readings: Sequence[int] | np.ndarray,
    wh: Sequence[float] | np.ndarray | None = None,
    max_fill_pct: Sequence[float] | np.ndarray | None = None,
    waste: WasteEvents | None = None,
    fill_emptyings: list[tuple[int, float]] | None = None,
) -> DeviceSeries:
    """A device's series from rollup rows (one per interval with readings, oldest first).

    Meters: `wh`, accepted counter deltas per interval (boucle.accounting.counter_deltas
    summed by per_interval); they become a cumulative counter at interval ends, so the
    indicators spread each interval's energy over it (and over a gap before it, as with
    readings). Bins: `max_fill_pct`, the fullest fill of each interval; `waste` and
    `fill_emptyings`, the events accounted at ingest (boucle.accounting.waste_events and
    level_events, carried across windows with their state).
    """
    start = np.asarray(starts, dtype=np.int64)
    fields: dict[str, np.ndarray] = {}
    if wh is not None:
        # counter points at interval ends, after a zero at the first interval's start
        times = np.concatenate([start[:1], start + step_s])
        fields["energy_wh"] = np.concatenate([[0.0], np.cumsum(np.asarray(wh, dtype=np.float64))])
    else:
        # bins: an interval's fullest fill at its start, so that the interval holding an
        # emptying counts for the cycle the emptying ends
        times = start
        if max_fill_pct is not None:
            fields["fill_pct"] = np.asarray(max_fill_pct, dtype=np.float64)
    return DeviceSeries(device, times, fields, baseline=False, readings=int(np.sum(readings)),
                        waste=waste, fill_emptyings=fill_emptyings)


Loader = Callable[[Store, Sequence[Device], Period], dict[str, DeviceSeries]]
"""How series are read: `load_series` (raw readings), or a rollup reader with the same shape
(energy_wh as cumulative accepted Wh at interval ends, `readings` set to the count)."""


class Source:
    """Loads each device's series once for `period`; answers any sub-period by slicing."""

    def __init__(self, store: Store, period: Period, loader: Loader = load_series):
        self.store = store
        self.period = period
        self.loader = loader
        self._series: dict[str, DeviceSeries] = {}
        self._devices: dict[str, Device] = {}
        self._step: tuple[Period | None, dict[str, DeviceSeries]] = (None, {})

    def preload(self, devices: Sequence[Device]) -> None:
        missing = [d for d in devices if d.id not in self._series]
        if missing:
            self._series.update(self.loader(self.store, missing, self.period))
            self._devices.update((d.id, d) for d in missing)

    def series(self, device: Device, period: Period | None = None) -> DeviceSeries:
        """A device's series over `period` (default: the whole loaded period)."""
        if device.id not in self._series:
            self.preload([device])
        full = self._series[device.id]
        if period is None or period is self.period or period == self.period:
            return full
        if period.start < self.period.start or period.end > self.period.end:
            raise ValueError("sub-period outside the loaded period")
        if full.rollup:
            # a rollup cannot be sliced reading by reading: read the sub-period again, for
            # every device loaded so far at once (the steps of a series ask device by device)
            if self._step[0] != period or device.id not in self._step[1]:
                self._step = (period, self.loader(self.store, list(self._devices.values()), period))
            return self._step[1][device.id]
        return full.within(period)
