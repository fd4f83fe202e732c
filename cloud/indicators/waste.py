"""Waste indicators: mass by stream, per inhabitant, sorting, routes, collection quality."""

from __future__ import annotations

from boucle.registry import Device
from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome

G_PER_KG = 1000.0


def by_stream_kg(ctx: Context) -> dict[str, float]:
    """Deposited mass per stream (kg) over the scope's weighing bins."""
    out: dict[str, float] = {}
    for d in weighing_devices(ctx):
        if d.stream is None:
            continue
        kg = ctx.waste(d).deposited_g / G_PER_KG
        out[d.stream] = out.get(d.stream, 0.0) + kg
    return out


def weighing_devices(ctx: Context) -> list[Device]:
    """Bins with a scale: a profile naming one, or weight readings in the period.

    A silent scale bin stays in (its coverage shows it); fill-only bins are out.
    """
    out = []
    for d in ctx.waste_devices():
        times, _ = ctx.source.series(d, ctx.period).field("weight_g")
        if times.size or "scale" in (d.profile or ""):
            out.append(d)
    return out


def generated(ctx: Context) -> Outcome:
    """waste.generated: Σ deposited mass, by stream."""
    devices = weighing_devices(ctx)
    streams = by_stream_kg(ctx)
    value = sum(streams.values()) if devices else None
    return Outcome(
        value,
        "Σ deposited mass of weighing bins: rises of weight_g of at least 100 g over the last "
        "accepted level (hysteresis); an emptying (drop to <= max(500 g, 10% of the weight "
        "before)) is not a deposit, weight above tare after it is; fill-only bins add no mass.",
        devices,
        {"by_stream": dict(sorted(streams.items()))},
    )
