"""Territorial resource indicators (docs/indicators.md): pure computations over the store.

`compute_indicators` answers the catalogue for a site, a territory or several territories
over a period; `indicator_series` gives one indicator per time step. The data path is
`cloud.indicators.source.load_series` (raw readings today, rollups later).
"""

from __future__ import annotations

from collections.abc import Sequence

from boucle.registry import Registry
from boucle.storage import Store
from cloud.indicators.catalogue import CATALOGUE, IndicatorSpec
from cloud.indicators.context import Context, UnknownScope
from cloud.indicators.references import References, ReferencesError, load_references, standing
from cloud.indicators.values import IndicatorValue, Period, Scope

__all__ = [
    "CATALOGUE", "IndicatorSpec", "IndicatorValue", "Period", "References", "ReferencesError",
    "Scope", "UnknownIndicator", "UnknownScope", "compute_indicators", "indicator_series",
    "load_references",
]


class UnknownIndicator(LookupError):
    """An indicator id that is not in the catalogue."""


def _check_ids(ids: Sequence[str] | None) -> list[str]:
    if ids is None:
        return list(CATALOGUE)
    unknown = [i for i in ids if i not in CATALOGUE]
    if unknown:
        raise UnknownIndicator(
            f"unknown indicator {', '.join(map(repr, unknown))}: use one of {', '.join(CATALOGUE)}")
    return list(dict.fromkeys(ids))


def _evaluate(ctx: Context, indicator_id: str) -> IndicatorValue:
    spec = CATALOGUE[indicator_id]
    out = spec.compute(ctx)
    reference = out.reference if out.reference is not None else ctx.references.benchmark(indicator_id)
    coverage = ctx.coverage(out.devices) if out.devices else 0.0
    value = None if out.value is None else float(out.value)
    caveats = list(out.caveats)
    if coverage == 0.0 and value is not None and spec.needs_readings:
        # devices exist but sent nothing in the period: a 0 would read as "nothing happened"
        value = None
        caveats.append("no readings in the period")
    return IndicatorValue(
        id=indicator_id, value=value, unit=out.unit or spec.unit, period=ctx.period, formula=out.formula,
        coverage=coverage,
        reference=reference, standing=standing(value, reference), breakdown=out.breakdown,
        name=spec.name, caveats=caveats,
    )


def compute_indicators(
    store: Store,
    registry: Registry,
    scope: Scope,
    period: Period,
    ids: Sequence[str] | None = None,
    references: References | None = None,
) -> list[IndicatorValue]:
    """The catalogue's indicators (or `ids`) for a scope over [period.start, period.end).

    Raises UnknownScope for a site/territory not in the registry, UnknownIndicator for an
    id not in the catalogue.
    """
    wanted = _check_ids(ids)
    ctx = Context(store, registry, scope, period, references or load_references())
    ctx.source.preload(ctx.devices)
    return [_evaluate(ctx, i) for i in wanted]


def indicator_series(
    store: Store,
    registry: Registry,
    scope: Scope,
    indicator_id: str,
    period: Period,
    step_s: int,
    references: References | None = None,
) -> list[IndicatorValue]:
    """One indicator per step over the period (the last step may be shorter).

    Data is read once for the whole period; each step sees its own baseline reading.
    """
    _check_ids([indicator_id])
    if step_s < 60:
        raise ValueError(f"step {step_s} s is too short: use at least 60 s")
    if period.seconds / step_s > 10_000:
        raise ValueError(f"{period.seconds // step_s} steps is too many: use a longer step (at most 10,000 steps)")
    references = references or load_references()
    whole = Context(store, registry, scope, period, references)
    whole.source.preload(whole.devices)
    out = []
    for start in range(period.start, period.end, step_s):
        step = Period(start, min(start + step_s, period.end))
        ctx = Context(store, registry, scope, step, references, source=whole.source)
        out.append(_evaluate(ctx, indicator_id))
    return out
