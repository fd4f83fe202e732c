"""CSV for spreadsheets: indicator sets and series (UTF-8, comma-separated, one header row)."""

from __future__ import annotations

import csv
import io
import json

from fastapi import Response

from cloud.models import IndicatorSet, Series

INDICATOR_COLUMNS = ["scope", "id", "name", "value", "unit", "from", "to", "coverage", "standing",
                     "reference_target", "reference_limit", "reference_source", "formula", "caveats"]
SERIES_COLUMNS = ["scope", "indicator", "unit", "from", "to", "value", "coverage", "standing"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _scope(scope: dict) -> str:
    return "+".join(scope.get("ids", []))


def indicator_rows(sets: list[IndicatorSet]) -> list[list[str]]:
    rows = [INDICATOR_COLUMNS]
    for s in sets:
        for v in s.indicators:
            ref = v.reference or {}
            source = ref.get("source")
            rows.append([_cell(x) for x in (
                _scope(s.scope), v.id, v.name, v.value, v.unit, v.period.start, v.period.end, v.coverage,
                v.standing, ref.get("target"), ref.get("limit"),
                source if isinstance(source, str) or source is None else json.dumps(source),
                v.formula, "; ".join(v.caveats))])
    return rows


def series_rows(series: Series) -> list[list[str]]:
    rows = [SERIES_COLUMNS]
    for p in series.points:
        rows.append([_cell(x) for x in (_scope(series.scope), series.indicator, series.unit, p.start, p.end,
                                        p.value, p.coverage, p.standing)])
    return rows


def csv_response(rows: list[list[str]], filename: str, headers: dict[str, str] | None = None) -> Response:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})})
