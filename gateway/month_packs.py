"""Month packs: a device's 15-min windows of one UTC month, packed in arrays.

A year of 15-min windows of a thousand devices is 35 million rows: no embedded store reads
that in 200 ms. A pack holds one device-month in a handful of arrays (per-day readings and
amounts, per-slot energy, per-day fill maxima, the emptyings), so the same year is 12,000
rows. Packs are recomputed from the device's windows of the month (never patched), so
rewriting gives the same pack whatever the order of late data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from boucle.accounting import fill_events
from boucle.storage import MonthPack, Store, Window

DAY = 86400
QUARTER = 900


def month_start(ts: int) -> int:
    """UTC start of the month holding ts."""
    d = datetime.fromtimestamp(ts, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def next_month(month: int) -> int:
    d = datetime.fromtimestamp(month, UTC)
    return int(datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC).timestamp())


def months(start: int, end: int) -> list[int]:
    """Starts of the UTC months overlapping [start, end)."""
    out, m = [], month_start(start)
    while m < end:
        out.append(m)
        m = next_month(m)
    return out


def month_pack(device: str, month: int, quarters: Sequence[Window]) -> MonthPack:
    """The pack of one device-month from its 15-min windows of that month, oldest first.

    Emptyings: scale bins' come from the windows (at window start + 1 s, each at the window's
    collected mass ÷ its emptyings); fill-only bins' are found on the windows' fill maxima
    (boucle.accounting.fill_events, the month's first window as baseline).
    """
    days = (next_month(month) - month) // DAY
    starts = np.fromiter((w.start for w in quarters), dtype=np.int64, count=len(quarters))
    day = (starts - month) // DAY
    readings = np.bincount(day, weights=[w.readings for w in quarters], minlength=days)
    energy = [w.energy_wh for w in quarters]
    deposited = [w.deposited_g for w in quarters]
    metered = any(e is not None for e in energy)
    weighed = any(g is not None for g in deposited)
    amounts = energy if metered else deposited
    amount = np.bincount(day, weights=[a or 0.0 for a in amounts], minlength=days)
    quarter_wh = b""
    if metered:
        slots = np.full(days * DAY // QUARTER, np.nan, dtype=np.float32)
        slots[(starts - month) // QUARTER] = [np.nan if e is None else e for e in energy]
        quarter_wh = slots.tobytes()
    fills = np.array([np.nan if w.fill_max_pct is None else w.fill_max_pct for w in quarters], dtype=np.float64)
    fill_max = b""
    if (~np.isnan(fills)).any():
        per_day = np.full(days, np.nan)
        np.fmax.at(per_day, day, fills)
        fill_max = per_day.astype(np.float32).tobytes()
    emptied: list[tuple[float, float]] = []
    if weighed:
        for w in quarters:
            if w.emptyings:
                emptied += [(w.start + 1, (w.collected_g or 0.0) / w.emptyings)] * w.emptyings
    elif fill_max:
        keep = ~np.isnan(fills)
        emptied = [(float(t), top) for t, top in fill_events(starts[keep], fills[keep]).emptyings]
    return MonthPack(device, month, readings.astype(np.int32).tobytes(), amount.astype(np.float64).tobytes(),
                     quarter_wh, fill_max, np.array(emptied, dtype=np.float64).reshape(-1).tobytes())


def refresh_month_packs(store: Store, device: str, start: int, end: int) -> None:
    """Recompute a device's packs of the months overlapping [start, end) from its windows."""
    packs = []
    for m in months(start, end):
        quarters = store.windows([device], "15m", m, next_month(m))
        if quarters:
            packs.append(month_pack(device, m, quarters))
    if packs:
        store.write_month_packs(packs)
