"""Registry: territories, sites, devices, waste routes, material needs and API keys.

One human-editable TOML file (docs/registry.md). `load_registry()` validates it and
raises `RegistryError` naming the file, the key, the line and the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tomllib
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from boucle import kinds
from boucle.geo import distance_km
from boucle.kinds import DeviceKind

ID = r"^[a-z0-9][a-z0-9_-]{1,47}$"
DEVICE_ID = r"^[a-z0-9][a-z0-9_-]{2,47}$"

TerritoryKind = Literal["commune", "industrial_zone", "intercommunality", "region", "other"]
SiteKind = Literal[
    "fablab", "sme_workshop", "bakery", "school", "plant", "collection_point",
    "household_dropoff", "office", "other",
]
Route = Literal[
    "reuse", "recycling", "composting", "anaerobic_digestion",
    "incineration_energy_recovery", "landfill",
]
RESIDUAL_STREAM = "residual"
Signed = Literal["required", "optional"]
"""Whether a device must sign its telemetry (docs/registry.md, "Signed readings")."""


class RegistryError(Exception):
    """A registry file that cannot be used: where (file, key, line) and how to fix it."""

    def __init__(self, file: Path | str, key: str, problem: str, fix: str, line: int | None = None):
        self.file, self.key, self.problem, self.fix, self.line = str(file), key, problem, fix, line
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {key}: {problem}. Fix: {fix}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


AlertRule = Literal["bin_overflow", "device_silent", "data_gap", "base_load_high", "water_leak"]


class AlertSettings(_Model):
    """A territory's alert rules (`[territories.alerts]`, docs/registry.md "Alerts")."""

    off: tuple[AlertRule, ...] = ()
    """Rules not evaluated for this territory."""
    silent_intervals: int = Field(default=10, ge=2, le=100_000)
    """device_silent: no reading for longer than this many of the device's intervals."""
    gap_intervals: int = Field(default=5, ge=2, le=100_000)
    """data_gap: a hole longer than this many intervals between two readings..."""
    gap_lookback_h: int = Field(default=24, ge=1, le=168)
    """...within the last this many hours."""
    base_load_ratio: float = Field(default=1.5, gt=1, le=100)
    """base_load_high: last night's base load above this × the median of the nights before..."""
    base_load_min_w: float = Field(default=100, ge=0, le=10_000_000)
    """...and above that median by at least this many watts."""
    base_load_nights: int = Field(default=14, ge=3, le=60)
    """Nights before last night that make its usual level."""


class HealthSettings(_Model):
    """A territory's device-health thresholds (`[territories.device_health]`, docs/registry.md)."""

    offline_intervals: int | None = Field(default=None, ge=1, le=100_000)
    """Offline when nothing was received for longer than this many of the device's intervals
    (None: BOUCLE_ONLINE_AFTER_S, the service's setting)."""
    low_coverage_pct: float = Field(default=90, ge=0, le=100)
    """To visit when its coverage over the period is below this."""
    dropped_readings: int = Field(default=1, ge=1, le=1_000_000_000)
    """To visit when it reports having dropped at least this many readings (buffer full)."""
    backlog_readings: int = Field(default=100, ge=1, le=1_000_000)
    """To visit when at least this many readings wait in its buffer."""
    weak_rssi_dbm: int = Field(default=-80, ge=-130, le=0)
    """To visit when its Wi-Fi signal is below this."""


class CollectionSettings(_Model):
    """A territory's collection rounds (`[territories.collection]`, docs/registry.md "Collection rounds")."""

    depot: tuple[float, float] | None = None
    """[latitude, longitude] the rounds start from: the plan lists bins by distance from it."""
    round_days: str = "Mo-Fr"
    """The days rounds run, like opening hours' days (Mo-Fr, Mo,We,Fr)."""
    round_time: str = "06:00"
    """Local time a round starts (HH:MM): a bin is collected at the first round after now."""
    threshold_pct: float = Field(default=90, gt=0, le=100)
    """Fill at which a bin is due: in the plan when it would pass it before the next round."""
    lookback_days: int = Field(default=7, ge=1, le=60)
    """Days of readings a bin's fill rate is estimated from (its recent deposits)."""

    @field_validator("round_days")
    @classmethod
    def _days_parse(cls, value: str) -> str:
        _days(value)
        return value

    @field_validator("round_time")
    @classmethod
    def _time_parse(cls, value: str) -> str:
        try:
            datetime.strptime(value, "%H:%M")
        except ValueError:
            raise ValueError(f"round_time {value!r} is not like 06:00") from None
        return value

    def weekdays(self) -> list[int]:
        """The round days, 0 = Monday."""
        return sorted(set(_days(self.round_days)))


class Territory(_Model):
    id: str = Field(pattern=ID)
    name: str
    kind: TerritoryKind
    population: int = Field(ge=0)
    centroid: tuple[float, float]
    timezone: str = "Europe/Paris"
    routes: dict[str, Route] = {}
    alerts: AlertSettings = AlertSettings()
    device_health: HealthSettings = HealthSettings()
    collection: CollectionSettings = CollectionSettings()
    signed: Signed = "optional"
    """Its devices' default: "required" refuses unsigned telemetry even from a device the
    key store has no key for; "optional" (what registries written before signing mean)
    takes it. A device with a key must sign either way."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Paris')")
        return value


class Site(_Model):
    id: str = Field(pattern=ID)
    territory: str
    name: str
    kind: SiteKind
    location: tuple[float, float]
    floor_area_m2: float | None = Field(default=None, gt=0)
    employees: int | None = Field(default=None, ge=0)
    activity_code: str | None = None
    opening_hours: str = "Mo-Fr 08:00-18:00"

    @field_validator("opening_hours")
    @classmethod
    def _hours_parse(cls, value: str) -> str:
        parse_opening_hours(value)
        return value


class Move(_Model):
    """A site a device was at before the next entry's site (or its `site`)."""

    site: str
    until: AwareDatetime
    """When it left that site (with its zone: 2026-03-01T00:00:00Z)."""


FOREVER = 2**62
"""A tenure's open end (and a first tenure's open start, negated)."""


class _DeviceBase(_Model):
    """A device: id, site, kind, then its kind's keys (each kind's DEVICE_KEYS, boucle.kinds),
    its interval, profile, calibration and earlier sites (`Device`, built below, declares
    them in that order: the order pydantic checks them in)."""

    if TYPE_CHECKING:  # the fields, for readers and type checkers; _device_model() makes them
        id: str
        site: str
        """Where the device is now (since its last move)."""
        kind: str
        interval_s: int
        profile: str | None
        calibration: dict[str, float]
        signed: Signed | None
        """Overrides its territory's `signed`."""
        moves: tuple[Move, ...]
        """Earlier sites, oldest first: readings are attributed to the site they were taken at."""

    def tenures(self) -> list[tuple[str, int, int]]:
        """(site, from, until) of each stay, oldest first, as UTC seconds [from, until)."""
        out, since = [], -FOREVER
        for move in self.moves:
            until = int(move.until.timestamp())
            out.append((move.site, since, until))
            since = until
        out.append((self.site, since, FOREVER))
        return out

    def site_at(self, ts: float) -> str:
        """The site the device was at at `ts`."""
        for move in self.moves:
            if ts < move.until.timestamp():
                return move.site
        return self.site


def _device_model() -> type[_DeviceBase]:
    """The Device model: the common keys, and every kind's DEVICE_KEYS (optional, bounded)."""
    keyed: dict[str, Any] = {}
    for _kind, key in kinds.device_keys():
        keyed.setdefault(key.name, (key.type | None, Field(default=None, gt=key.gt, description=key.doc)))
    return create_model(
        "Device", __base__=_DeviceBase, __module__=__name__,
        id=(str, Field(pattern=DEVICE_ID)), site=(str, ...),
        kind=(DeviceKind, Field(description="What it measures: a kind of boucle.kinds (the firmware's descriptors).")),
        **keyed,
        interval_s=(int, Field(default=60, ge=1, le=86400)), profile=(str | None, None),
        calibration=(dict[str, float], {}), signed=(Signed | None, None), moves=(tuple[Move, ...], ()))


Device = _device_model()


class Need(_Model):
    site: str
    material: str
    kg_per_month: float = Field(gt=0)
    max_distance_km: float = Field(default=30, gt=0)


class ApiKey(_Model):
    id: str = Field(pattern=ID)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    admin: bool = False
    territories: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()


class Registry(_Model):
    territories: tuple[Territory, ...]
    sites: tuple[Site, ...] = ()
    devices: tuple[Device, ...] = ()
    waste_streams: dict[str, Route] = {}
    needs: tuple[Need, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()

    def territory(self, territory_id: str) -> Territory | None:
        return next((t for t in self.territories if t.id == territory_id), None)

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def sites_of(self, territory_id: str) -> list[Site]:
        return [s for s in self.sites if s.territory == territory_id]

    def devices_of_site(self, site_id: str) -> list[Device]:
        return [d for d in self.devices if d.site == site_id]

    def devices_of(self, territory_id: str) -> list[Device]:
        sites = {s.id for s in self.sites_of(territory_id)}
        return [d for d in self.devices if d.site in sites]

    def unsigned_refused(self) -> frozenset[str]:
        """The devices whose telemetry must be signed whatever the key store holds: `signed`
        "required" on the device, or on its site's territory when the device says nothing."""
        territory_of = {s.id: self.territory(s.territory) for s in self.sites}
        out = set()
        for d in self.devices:
            territory = territory_of.get(d.site)
            rule = d.signed or (territory.signed if territory else "optional")
            if rule == "required":
                out.add(d.id)
        return frozenset(out)

    def route(self, territory_id: str, stream: str) -> Route:
        """Treatment route of a waste stream in a territory (territory override first)."""
        territory = self.territory(territory_id)
        if territory and stream in territory.routes:
            return territory.routes[stream]
        return self.waste_streams[stream]


def profile_fields(profile: str | None) -> frozenset[str]:
    """The reading fields a firmware sensor profile's sensors produce (the profile's sensor
    types' descriptors, boucle_fw.sensors): empty for a device without a profile or with
    one the firmware does not know."""
    from boucle_fw.config import profiles
    from boucle_fw.discovery import fields_of

    sensors = profiles().get(profile or "", {}).get("sensors", ())
    return frozenset(fields_of([sensor["type"] for sensor in sensors]))


def _profile_kind(profile: str | None) -> str | None:
    from boucle_fw.config import profiles

    found = profiles().get(profile or "")
    return found["kind"] if found else None


def hash_key(key: str) -> str:
    """How API keys are stored: SHA-256 of the key (keys are 32 random bytes, so no KDF)."""
    return hashlib.sha256(key.encode()).hexdigest()


# --- opening hours -------------------------------------------------------------------

_DAYS = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
_HOURS_RULE = re.compile(r"^\s*([A-Za-z,\-]+)\s+(.+?)\s*$")


def parse_opening_hours(text: str) -> dict[int, list[tuple[time, time]]]:
    """Parse a subset of OpenStreetMap `opening_hours`: "Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00".

    Returns weekday (0 = Monday) → list of (open, close). Days not named are closed;
    "24/7" means always open; "off" closes the named days.
    """
    if text.strip() == "24/7":
        return {d: [(time(0), time(23, 59, 59))] for d in range(7)}
    week: dict[int, list[tuple[time, time]]] = {}
    for rule in filter(None, (r.strip() for r in text.split(";"))):
        match = _HOURS_RULE.match(rule)
        if not match:
            raise ValueError(f"opening hours rule {rule!r} is not like 'Mo-Fr 08:00-18:00'")
        days = _days(match.group(1))
        spans = [] if match.group(2) == "off" else [_span(s) for s in match.group(2).split(",")]
        for day in days:
            week[day] = spans
    return week


def _days(text: str) -> list[int]:
    days: list[int] = []
    for part in text.split(","):
        ends = part.split("-")
        if any(e not in _DAYS for e in ends) or len(ends) > 2:
            raise ValueError(f"day {part!r} is not one of {','.join(_DAYS)} or a range like Mo-Fr")
        first, last = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        days.extend(range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)])
    return days


def _span(text: str) -> tuple[time, time]:
    try:
        start, end = (datetime.strptime(t.strip(), "%H:%M").time() for t in text.split("-"))
    except ValueError:
        start = end = None
    if start is None or end is None or start >= end:
        raise ValueError(f"hours {text!r} are not like 08:00-18:00 (opening before closing)")
    return start, end


def is_open(hours: dict[int, list[tuple[time, time]]], local: datetime) -> bool:
    """Whether a site is open at a local (site time zone) datetime."""
    t = local.time()
    return any(start <= t < end for start, end in hours.get(local.weekday(), []))


# --- loading -------------------------------------------------------------------------


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and check a registry file; raise RegistryError with file, key, line and fix."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise RegistryError(path, "(file)", "no such file",
                            "pass --registry with the path of a registry TOML file "
                            "(boucle/examples/registry.toml is a complete example)") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise RegistryError(path, "(encoding)", f"not UTF-8 text (byte {exc.start})",
                            "save the file as UTF-8", line) from None
    except OSError as exc:
        raise RegistryError(path, "(file)", f"cannot be read ({exc.strerror})",
                            "check the path and the file's permissions") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _lineno(str(exc))
        raise RegistryError(path, "(syntax)", f"not valid TOML ({exc})",
                            "correct the TOML syntax at that line", line) from None
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _dotted(err["loc"])
        raise RegistryError(path, key, err["msg"], _fix_for(err), _line_of(text, err["loc"])) from None
    _check_references(path, text, registry)
    return registry


def _lineno(message: str) -> int | None:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fix_for(err: dict) -> str:
    kind = err["type"]
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove this key or check its spelling against docs/registry.md"
    if kind in ("literal_error", "enum"):
        return f"use one of the allowed values ({err.get('ctx', {}).get('expected', 'see docs/registry.md')})"
    bound = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
             "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}.get(kind)
    if bound and bound[0] in err.get("ctx", {}):
        limit = err["ctx"][bound[0]]
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"use a value {bound[1]} {limit} (docs/registry.md gives each key's range and default)"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "use a whole number (docs/registry.md gives each key's range and default)"
    if kind == "string_pattern_mismatch":
        return "use lower-case letters, digits, '-' and '_' only (3 to 48 characters)"
    return "see docs/registry.md for the expected value"


def _line_of(text: str, loc: tuple) -> int | None:
    """Line of `[[table]]` number loc[1] (and its key loc[2], when present) in the file."""
    if not loc or not isinstance(loc[0], str):
        return None
    table = loc[0]
    lines = text.splitlines()
    if len(loc) < 2 or not isinstance(loc[1], int):
        for n, line in enumerate(lines, 1):
            if re.match(rf"\s*(\[\[?{re.escape(table)}[\].]|{re.escape(table)}\s*=)", line):
                return n
        return None
    seen = -1
    for n, line in enumerate(lines, 1):
        if re.match(rf"\s*\[\[{re.escape(table)}\]\]", line):
            seen += 1
            if seen == loc[1]:
                if len(loc) > 2 and isinstance(loc[2], str):
                    for m in range(n, len(lines)):
                        if lines[m].lstrip().startswith("["):
                            break
                        if re.match(rf"\s*{re.escape(loc[2])}\s*=", lines[m]):
                            return m + 1
                return n
    return None


def _check_references(path: Path, text: str, reg: Registry) -> None:
    def fail(loc: tuple, problem: str, fix: str) -> None:
        raise RegistryError(path, _dotted(loc), problem, fix, _line_of(text, loc))

    for table, items in (("territories", reg.territories), ("sites", reg.sites),
                         ("devices", reg.devices), ("api_keys", reg.api_keys)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                fail((table, i, "id"), f"duplicate id {item.id!r}", "give every entry its own id")
            seen.add(item.id)
    territories = {t.id for t in reg.territories}
    sites = {s.id for s in reg.sites}
    for i, t in enumerate(reg.territories):
        for stream in t.routes:
            if stream not in reg.waste_streams:
                fail(("territories", i, "routes"), f"stream {stream!r} is not in [waste_streams]",
                     "declare the stream and its default route under [waste_streams]")
        depot = t.collection.depot
        if depot is not None and distance_km(depot, t.centroid) > DEPOT_MAX_KM:
            fail(("territories", i, "collection"),
                 f"depot {list(depot)} is {distance_km(depot, t.centroid):.0f} km from the territory's centroid",
                 f"give collection.depot as [latitude, longitude] of a place within {DEPOT_MAX_KM:g} km "
                 "(latitude first, like centroid)")
    for i, s in enumerate(reg.sites):
        if s.territory not in territories:
            fail(("sites", i, "territory"), f"territory {s.territory!r} does not exist",
                 f"use one of: {', '.join(sorted(territories))}")
    for i, d in enumerate(reg.devices):
        if d.site not in sites:
            fail(("devices", i, "site"), f"site {d.site!r} does not exist",
                 "use the id of a [[sites]] entry")
        for move in d.moves:
            if move.site not in sites:
                fail(("devices", i, "moves"), f"site {move.site!r} does not exist",
                     "use the id of a [[sites]] entry")
        untils = [m.until for m in d.moves]
        if untils != sorted(set(untils)):
            fail(("devices", i, "moves"), "moves are not in time order",
                 "list earlier sites oldest first, each with a later `until` than the one before")
        if any(u.timestamp() % 900 for u in untils):
            fail(("devices", i, "moves"), "a move's `until` is not on a quarter-hour",
                 "give the quarter-hour the device changed site, like 2026-03-01T10:15:00Z (data is kept "
                 "per quarter-hour)")
        for key, problem, fix in kinds.server(d.kind).check(d, reg):
            fail(("devices", i, key), problem, fix)
        kind = _profile_kind(d.profile)
        if kind is not None and kind != d.kind:
            fail(("devices", i, "profile"), f"profile {d.profile!r} measures {kind}, not {d.kind}",
                 f"use a {d.kind} profile, or kind = \"{kind}\"")
    for i, n in enumerate(reg.needs):
        if n.site not in sites:
            fail(("needs", i, "site"), f"site {n.site!r} does not exist", "use the id of a [[sites]] entry")
    for i, k in enumerate(reg.api_keys):
        for t in k.territories:
            if t not in territories:
                fail(("api_keys", i, "territories"), f"territory {t!r} does not exist",
                     f"use one of: {', '.join(sorted(territories))}")
        for s in k.sites:
            if s not in sites:
                fail(("api_keys", i, "sites"), f"site {s!r} does not exist", "use the id of a [[sites]] entry")
        if not (k.admin or k.territories or k.sites):
            fail(("api_keys", i, "id"), "this key has no scope",
                 "set admin = true, or list territories = [...] or sites = [...]")


DEPOT_MAX_KM = 100.0
"""A depot further than this from its territory's centroid is a typo (swapped coordinates)."""


class RegistryFile:
    """The registry as the services see it: reloaded when the file changes."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._mtime = self.path.stat().st_mtime_ns if self.path.exists() else 0
        self._registry = load_registry(self.path)
        self.rejected: str | None = None
        """Why the newest edit of the file was not taken (None: the file is what is served)."""

    def current(self) -> Registry:
        """The registry, re-read if the file changed; a broken edit keeps the last good one."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return self._registry
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._registry = load_registry(self.path)
                self.rejected = None
            except Exception as exc:  # noqa: BLE001 - any unreadable edit, RegistryError or not
                self.rejected = str(exc)
                logging.getLogger("boucle.registry").error("registry edit rejected, keeping the last good one: %s",
                                                           exc)
        return self._registry
