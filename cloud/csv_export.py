"""CSV for spreadsheets: indicator sets and series (UTF-8, comma-separated, one header row)."""

from __future__ import annotations

import csv
import io
import json

from fastapi import Response

from cloud.models import IndicatorSet, PeriodChange, Series

INDICATOR_COLUMNS = ["scope", "id", "name", "value", "unit", "from", "to", "coverage", "standing",
                     "reference_target", "reference_limit", "reference_source", "formula", "caveats"]
CHANGE_COLUMNS = ["compare", "compared_from", "compared_to", "compared_value", "compared_coverage", "delta",
                  "delta_pct", "direction", "improved"]
"""With `compare`: each indicator's `change` (cloud.period_compare), after the usual columns."""
SERIES_COLUMNS = ["scope", "indicator", "unit", "from", "to", "value", "coverage", "standing"]


def cell(value) -> str:
    """A CSV cell: empty for a missing value, floats in full (repr)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _scope(scope: dict) -> str:
    return "+".join(scope.get("ids", []))


def _change_cells(c: PeriodChange | None) -> list:
    if c is None:
        return [None] * len(CHANGE_COLUMNS)
    improved = None if c.improved is None else str(c.improved).lower()
    return [c.compare, c.period.start, c.period.end, c.value, c.coverage, c.delta, c.delta_pct, c.direction, improved]


def indicator_rows(sets: list[IndicatorSet]) -> list[list[str]]:
    """One row per indicator of each set; the change columns too when a set was compared."""
    compared = any(s.compared_with is not None for s in sets)
    rows = [INDICATOR_COLUMNS + (CHANGE_COLUMNS if compared else [])]
    for s in sets:
        for v in s.indicators:
            ref = v.reference or {}
            source = ref.get("source")
            cells = [_scope(s.scope), v.id, v.name, v.value, v.unit, v.period.start, v.period.end, v.coverage,
                     v.standing, ref.get("target"), ref.get("limit"),
                     source if isinstance(source, str) or source is None else json.dumps(source),
                     v.formula, "; ".join(v.caveats)]
            rows.append([cell(x) for x in cells + (_change_cells(v.change) if compared else [])])
    return rows


def series_rows(series: Series) -> list[list[str]]:
    rows = [SERIES_COLUMNS]
    for p in series.points:
        rows.append([cell(x) for x in (_scope(series.scope), series.indicator, series.unit, p.start, p.end,
                                        p.value, p.coverage, p.standing)])
    return rows


def csv_response(rows: list[list[str]], filename: str, headers: dict[str, str] | None = None) -> Response:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})})
