"""Query parameters shared by the endpoints: period, indicator ids, step, territory lists.

A malformed value is answered 422 with a problem naming the parameter.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query

from boucle.rollup import SLOT
from cloud.indicators import CATALOGUE, Period
from cloud.problems import invalid_parameter

DEFAULT_DAYS = 30
MAX_PERIOD_S = 20 * 366 * 86400
MIN_INSTANT = 0  # 1970-01-01
MAX_INSTANT = 4102444800  # 2100-01-01
STEP_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_STEPS = 10_000


def parse_instant(name: str, text: str) -> int:
    """An ISO 8601 date or date-time (UTC unless an offset is given) or Unix seconds.

    Digits are ASCII only: `int()` and `\\d` also take other scripts' digits (١٧٧٤…, ７…),
    which would read as a Unix time nobody wrote.
    """
    text = text.strip()
    try:
        if not text.isascii():
            raise ValueError(text)
        if re.fullmatch(r"-?[0-9]{1,12}", text):
            ts = int(text)
        else:
            dt = datetime.fromisoformat(text)
            ts = math.floor((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())
    except (ValueError, OverflowError):
        raise invalid_parameter(name, f"{name}={text!r} is not an ISO 8601 date/time or Unix seconds "
                                      "in ASCII digits (e.g. 2026-11-01, 2026-11-01T00:00:00Z or 1774656000)"
                                ) from None
    if not MIN_INSTANT <= ts <= MAX_INSTANT:
        raise invalid_parameter(name, f"{name}={text!r} is outside 1970–2100")
    return ts


def default_end(now: float | None = None) -> int:
    """Now, rounded up to the next quarter-hour: the default period's edges fall on the
    rollups' slots, so it is read from rollups alone (an edge inside a quarter-hour is
    computed from every device's raw readings of that day), and repeated queries share a
    cache entry."""
    now = time.time() if now is None else now
    return int(math.ceil(now / SLOT) * SLOT)


def get_period(
    start: Annotated[str | None, Query(
        alias="from", max_length=40,
        description="Start (inclusive): ISO 8601 date/time or Unix seconds. Default: 30 days before `to`.",
        openapi_examples={"date": {"value": "2026-03-28"}, "unix": {"value": "1774656000"}})] = None,
    end: Annotated[str | None, Query(
        alias="to", max_length=40,
        description="End (exclusive): ISO 8601 date/time or Unix seconds. Default: now (rounded up to the quarter-hour).",
        openapi_examples={"date": {"value": "2026-03-30"}})] = None,
) -> Period:
    t1 = parse_instant("to", end) if end else default_end()
    t0 = parse_instant("from", start) if start else t1 - DEFAULT_DAYS * 86400
    if t0 >= t1:
        raise invalid_parameter("from", f"'from' ({t0}) must be before 'to' ({t1})")
    if t1 - t0 > MAX_PERIOD_S:
        raise invalid_parameter("from", "a period is at most 20 years")
    return Period(t0, t1)


def parse_ids(text: str | None) -> list[str] | None:
    """Comma-separated indicator ids, checked against the catalogue (None: all)."""
    if text is None:
        return None
    ids = [i.strip() for i in text.split(",") if i.strip()]
    unknown = [i for i in ids if i not in CATALOGUE]
    if unknown:
        raise invalid_parameter("ids", f"unknown indicator {', '.join(map(repr, unknown))}; "
                                       f"known: {', '.join(CATALOGUE)}")
    if not ids:
        raise invalid_parameter("ids", "give at least one indicator id, or leave 'ids' out for all")
    return list(dict.fromkeys(ids))


def parse_step(text: str) -> int:
    """A step like 15m, 1h, 1d, 1w, or seconds; at least one minute."""
    match = re.fullmatch(r"\s*([0-9]{1,7})\s*([mhdw]?)\s*", text, re.ASCII)
    if not match:
        raise invalid_parameter("step", f"step={text!r} is not a duration like 15m, 1h, 1d, 1w or 3600 (seconds)")
    seconds = int(match.group(1)) * STEP_UNITS.get(match.group(2), 1)
    if seconds < 60:
        raise invalid_parameter("step", f"step={text!r} is shorter than one minute")
    return seconds


def check_steps(period: Period, step_s: int) -> None:
    steps = math.ceil(period.seconds / step_s)
    if steps > MAX_STEPS:
        raise invalid_parameter("step", f"{steps} steps over this period; the most is {MAX_STEPS}: use a longer step")


def parse_list(name: str, text: str, most: int) -> list[str]:
    """A comma-separated list of ids, without repeats, at most `most`."""
    items = list(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
    if not items:
        raise invalid_parameter(name, f"give at least one id in '{name}' (comma-separated)")
    if len(items) > most:
        raise invalid_parameter(name, f"at most {most} ids in '{name}'")
    return items


IdsQuery = Annotated[str | None, Query(
    description="Comma-separated indicator ids (default: the whole catalogue).", max_length=2000,
    openapi_examples={"two": {"value": "energy.consumed,waste.per_capita"}})]
StepQuery = Annotated[str, Query(
    description="Step: 15m, 1h, 1d, 1w or seconds (at least 60 s, at most 10,000 steps).", max_length=20,
    openapi_examples={"hourly": {"value": "1h"}, "daily": {"value": "1d"}})]
FormatQuery = Annotated[str, Query(
    alias="format", pattern="^(json|csv)$", description="`json` (default) or `csv` (for spreadsheets).")]
TerritoryId = Annotated[str, Path(max_length=48, description="Territory id from the registry.",
                                  openapi_examples={"ecully": {"value": "ecully"}})]
SiteId = Annotated[str, Path(max_length=48, description="Site id from the registry.",
                             openapi_examples={"fablab": {"value": "ecully-fablab"}})]
IndicatorId = Annotated[str, Path(max_length=64, description="An indicator id of the catalogue.",
                                  openapi_examples={"energy": {"value": "energy.consumed"}})]
