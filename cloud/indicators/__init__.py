"""Territorial resource indicators (docs/indicators.md).

`compute_indicators` answers the catalogue for a site, a territory or several territories
over a period; `indicator_series` gives one indicator per time step. Each computation loads
its frames once (`context.Context.load`, `frames.FrameLoader`: the gateway's rollups, raw
readings where they do not reach; `raw=True`: raw readings only), then the formulas
(energy, waste, circular, coverage) are pure functions of those frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from boucle.registry import Registry
from boucle.storage import Store
from cloud.indicators import caveats as caveat_texts
from cloud.indicators.catalogue import CATALOGUE, IndicatorSpec
from cloud.indicators.context import Context, UnknownScope
from cloud.indicators.frames import ComputedDays
from cloud.indicators.references import References, ReferencesError, load_references, standing
from cloud.indicators.values import IndicatorValue, Period, Scope, significant

__all__ = [
    "CATALOGUE", "IndicatorSpec", "IndicatorValue", "Period", "References", "ReferencesError",
    "Scope", "UnknownIndicator", "UnknownScope", "compute_indicators", "indicator_series",
    "load_context", "load_references", "pooling_detail", "symbiosis_detail",
]


LOW_COVERAGE = 0.9
"""Below this share of expected readings a value carries a caveat."""
NO_STANDING_COVERAGE = 0.5
"""Below this share a value gets no standing: a benchmark on mostly missing data misleads."""


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
    value = None if out.value is None else significant(float(out.value))  # no float noise in the API
    caveats = list(out.caveats)
    if out.devices and coverage == 0.0 and value is not None and spec.needs_readings:
        # devices exist but sent nothing in the period: a 0 would read as "nothing happened"
        value = None
        caveats.append(caveat_texts.NO_READINGS)
    rank = standing(value, reference)
    if out.devices and value is not None and coverage < LOW_COVERAGE:
        caveats.append(caveat_texts.LOW_COVERAGE.format(coverage=f"{coverage:.0%}", threshold=f"{LOW_COVERAGE:.0%}"))
        if coverage < NO_STANDING_COVERAGE and rank is not None:
            rank = None  # no green or red card on mostly missing data
            caveats.append(caveat_texts.NO_STANDING.format(threshold=f"{NO_STANDING_COVERAGE:.0%}"))
    return IndicatorValue(
        id=indicator_id, value=value, unit=out.unit or spec.unit, period=ctx.period, formula=out.formula,
        coverage=coverage,
        reference=reference, standing=rank, breakdown=out.breakdown,
        name=spec.name, caveats=caveats,
    )


def load_context(store: Store, registry: Registry, scope: Scope, period: Period, ids: Sequence[str] | None = None,
                 references: References | None = None, raw: bool = False,
                 computed: ComputedDays | None = None) -> Context:
    """A computation's Context: the scope's frames and the profiles `ids` need."""
    wanted = _check_ids(ids)
    profiles = list(dict.fromkeys(CATALOGUE[i].profiles for i in wanted if CATALOGUE[i].profiles))
    return Context.load(store, registry, scope, period, references or load_references(), profiles, raw, computed)


def compute_indicators(
    store: Store,
    registry: Registry,
    scope: Scope,
    period: Period,
    ids: Sequence[str] | None = None,
    references: References | None = None,
    raw: bool = False,
) -> list[IndicatorValue]:
    """The catalogue's indicators (or `ids`) for a scope over [period.start, period.end).

    Raises UnknownScope for a site/territory not in the registry, UnknownIndicator for an
    id not in the catalogue. Data: the gateway's rollups where they reach, else raw
    readings (`raw`: raw readings only, the reference path; both give the same values).
    """
    wanted = _check_ids(ids)
    ctx = load_context(store, registry, scope, period, wanted, references, raw)
    return [_evaluate(ctx, i) for i in wanted]


def indicator_series(
    store: Store,
    registry: Registry,
    scope: Scope,
    indicator_id: str,
    period: Period,
    step_s: int,
    references: References | None = None,
    raw: bool = False,
    each_step: Callable[[], None] | None = None,
) -> list[IndicatorValue]:
    """One indicator per step over the period (the last step may be shorter); the steps of
    a sum (energy.consumed...) add up to the whole period's value. `each_step` is called
    before every step (the API's time budget raises from it)."""
    _check_ids([indicator_id])
    if step_s < 60:
        raise ValueError(f"step {step_s} s is too short: use at least 60 s")
    if period.seconds / step_s > 10_000:
        raise ValueError(f"{period.seconds // step_s} steps is too many: use a longer step (at most 10,000 steps)")
    references = references or load_references()
    computed: ComputedDays = {}  # raw days shared by the steps that cut them
    out = []
    for start in range(period.start, period.end, step_s):
        if each_step is not None:
            each_step()
        step = Period(start, min(start + step_s, period.end))
        ctx = load_context(store, registry, scope, step, [indicator_id], references, raw, computed)
        out.append(_evaluate(ctx, indicator_id))
    return out


def symbiosis_detail(
    store: Store,
    registry: Registry,
    scope: Scope,
    period: Period,
    everywhere: bool = False,
    references: References | None = None,
) -> list[dict]:
    """Symbiosis matches of a scope, best first (see circular.symbiosis_matches).

    `everywhere` also matches needs of sites outside the scope (admin views only).
    """
    from cloud.indicators.circular import symbiosis_matches

    ctx = load_context(store, registry, scope, period, ["circular.symbiosis_matches"], references)
    return symbiosis_matches(ctx, everywhere=everywhere)


def pooling_detail(
    store: Store,
    registry: Registry,
    scope: Scope,
    period: Period,
    max_distance_km: float | None = None,
    references: References | None = None,
) -> dict:
    """The pooling gain of a scope with its producer → consumer pairs and site balances."""
    from cloud.indicators.energy import balances, pooling

    ctx = load_context(store, registry, scope, period, ["energy.pooling_gain"], references)
    p = pooling(ctx, max_distance_km)
    before = 100 * p.self_used_wh / p.load_wh if p.load_wh > 0 else None
    return {
        "distance_km": p.distance_km,
        "shared_kwh": p.shared_wh / 1000,
        "gain_pp": p.gain_pp,
        "self_sufficiency_pct": before,
        "with_pooling_pct": None if before is None else before + (p.gain_pp or 0.0),
        "pairs": p.pairs,
        "sites": [{"site": b.site.id, "import_kwh": float(b.imported.sum()) / 1000,
                   "pv_kwh": b.pv_wh / 1000, "self_used_kwh": b.used_wh / 1000,
                   "surplus_kwh": b.surplus_wh / 1000, "method": b.method}
                  for b in balances(ctx)],
        "coverage": ctx.coverage(p.devices) if p.devices else 0.0,
    }
