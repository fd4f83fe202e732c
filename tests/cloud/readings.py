"""Deterministic readings for the example registry, written with `store.write_readings`.

Simple shapes whose totals are easy to reason about: one reading a minute per device;
grid meters import a base load plus a working-hours load minus the site's PV, PV
meters produce a midday bell, machine
meters run 10:00–12:00 UTC; bins with a scale gain 200 g every 10 minutes from 08:00 to
18:00 UTC and are emptied at 06:00 UTC each day; ultrasonic bins report fill_pct alike;
water meters draw 1 L a minute from 07:00 to 19:00 UTC and nothing at night.
"""

from __future__ import annotations

import math

from boucle.protocol import Reading
from boucle.registry import Device, Registry
from boucle.storage.sqlite import SQLiteStore

ORIGIN = 1774656000  # 2026-03-28 00:00 UTC: seq counts minutes from here, counters start at 0


def power_w(device: Device, ts: int, site_pv: list[Device] = ()) -> float:
    """Mean power of a meter at ts; a grid meter imports the site's load minus its PV."""
    hour = (ts % 86400) / 3600
    rated = device.rated_power_w or 3000.0
    if device.channel == "pv_production":
        return rated * 0.6 * max(0.0, math.sin(math.pi * (hour - 6) / 12))
    if device.channel == "load":
        return rated * 0.5 if 10 <= hour < 12 else 0.0
    load = rated * (0.08 + (0.25 if 7 <= hour < 18 else 0.0))
    return max(0.0, load - sum(power_w(pv, ts) for pv in site_pv))


def _bin_kg(ts: int) -> float:
    """Mass in a bin at ts: deposits since the day's 06:00 emptying."""
    day_start = ts - ts % 86400
    since = ts - (day_start + 6 * 3600)
    if since < 0:  # before today's emptying: what yesterday left
        since = 86400 + since
    deposits_from = 2 * 3600  # 08:00 is two hours after the emptying
    minutes = max(0, min(since, 12 * 3600) - deposits_from) // 600
    return 0.2 * minutes


def water_l(ts: int) -> int:
    """A water meter's counter at ts: a litre a minute from 07:00 to 19:00 UTC since ORIGIN."""
    days, into = divmod(ts - ORIGIN, 86400)
    return days * 720 + max(0, min(into, 19 * 3600) - 7 * 3600) // 60


def device_readings(device: Device, start: int, end: int, site_pv: list[Device] = ()) -> list[Reading]:
    out = []
    # the counter the device holds at `start`, integrated minute by minute from the origin
    energy = sum(round(power_w(device, t, site_pv) / 60) for t in range(ORIGIN, start, 60))
    for ts in range(start, end, 60):
        seq = (ts - ORIGIN) // 60
        if device.kind == "energy":
            watts = power_w(device, ts, site_pv)
            values = {"energy_wh": energy, "power_w": round(watts, 1)}
            energy += round(watts / 60)
        elif device.kind == "water":
            values = {"water_l": water_l(ts)}
        elif device.profile == "waste-ultrasonic":
            litres = device.capacity_l or 660.0
            values = {"fill_pct": round(min(100.0, _bin_kg(ts) * 10 / litres * 100), 1)}
        else:
            values = {"weight_g": int(_bin_kg(ts) * 1000)}
        out.append(Reading(device.id, 1, seq, ts, values))
    return out


def write_readings(store: SQLiteStore, registry: Registry, start: int, end: int) -> int:
    """Every device's readings over [start, end), stored; returns how many were new."""
    readings = []
    for d in registry.devices:
        pv = [p for p in registry.devices_of_site(d.site) if p.channel == "pv_production"]
        readings += device_readings(d, start, end, pv if d.channel == "grid_import" else [])
    return store.write_readings(readings, received=float(end))
