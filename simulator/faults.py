"""Faults on demand: what goes wrong, when, and on which devices (docs/simulator.md).

A fault comes from a `[[faults]]` table in a TOML file (`--faults FILE`) or from a
`--fault kind=outage,start=+2h,duration=30m,devices=ecully-*` flag; both give the same
fields. Times are relative to the simulation start (`+2h`), ISO dates or Unix seconds.
"""

from __future__ import annotations

import fnmatch
import random
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# kind -> needs a duration (a window) rather than a moment
KINDS = {
    "outage": True,          # Wi-Fi down: readings wait in the device buffer, then replay
    "unsynced_clock": True,  # reboot, then no NTP answer for the duration: readings re-stamped
    "dead_sensor": True,     # no reading at all (no duration: until the end)
    "reboot": False,         # boot counter +1, seq from 0
    "counter_reset": False,  # energy register back to zero
    "duplicate": False,      # the next `count` payloads are published twice
    "garbage": False,        # `count` invalid payloads on the device's telemetry topic
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FaultError(ValueError):
    """A fault description that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class Fault:
    kind: str
    start: int                  # simulated Unix seconds
    end: int | None             # windows only; None: until the simulation ends
    devices: tuple[str, ...]    # resolved device ids
    count: int = 1              # duplicate / garbage: how many payloads

    def active(self, ts: int) -> bool:
        return self.start <= ts and (self.end is None or ts < self.end)


def parse_flag(text: str) -> dict[str, Any]:
    """`kind=outage,start=+2h,duration=30m,devices=a|b*` -> the fields of one fault."""
    spec: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise FaultError(f"--fault {text!r}: {part!r} is not key=value (e.g. kind=outage,start=+1h,duration=30m)")
        spec[key.strip()] = value.strip().split("|") if key.strip() == "devices" else value.strip()
    return spec


def load_fault_file(path: str | Path) -> list[dict[str, Any]]:
    """The `[[faults]]` tables of a TOML file."""
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise FaultError(f"faults file {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise FaultError(f"faults file {path}: not valid TOML ({exc})") from None
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise FaultError(f"faults file {path}: write each fault as a [[faults]] table")
    return faults


def resolve(specs: list[dict[str, Any]], device_ids: list[str], sim_start: int, seed: int) -> list[Fault]:
    """Turn fault descriptions into Faults with absolute times and device ids."""
    out = []
    for i, spec in enumerate(specs):
        where = f"fault #{i + 1} ({spec.get('kind', '?')})"
        unknown = set(spec) - {"kind", "start", "duration", "end", "devices", "share", "count"}
        if unknown:
            raise FaultError(f"{where}: unknown field {min(unknown)!r}; "
                             "use kind, start, duration or end, devices or share, count")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultError(f"{where}: kind must be one of {', '.join(KINDS)}")
        start = parse_moment(spec.get("start", "+0s"), sim_start, where)
        end = None
        if "end" in spec:
            end = parse_moment(spec["end"], sim_start, where)
        elif "duration" in spec:
            end = start + parse_duration(spec["duration"], where)
        elif KINDS[kind] and kind != "dead_sensor":
            raise FaultError(f"{where}: give a duration (e.g. duration=30m) or an end")
        if end is not None and end <= start:
            raise FaultError(f"{where}: the end must come after the start")
        devices = _select(spec, device_ids, seed, i, where)
        count = int(spec.get("count", 1))
        if count < 1:
            raise FaultError(f"{where}: count must be at least 1")
        out.append(Fault(kind, start, end if KINDS[kind] else None, devices, count))
    return out


def _select(spec: dict[str, Any], device_ids: list[str], seed: int, i: int, where: str) -> tuple[str, ...]:
    patterns = spec.get("devices", ["*"])
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen = [d for d in device_ids if any(fnmatch.fnmatchcase(d, p) for p in patterns)]
    if not chosen:
        raise FaultError(f"{where}: no device matches {patterns}; use device ids or patterns like 'ecully-*'")
    if "share" in spec:
        share = float(spec["share"])
        if not 0 < share <= 1:
            raise FaultError(f"{where}: share must be in (0, 1]")
        rng = random.Random(f"{seed}:fault{i}")
        chosen = sorted(rng.sample(chosen, max(1, round(share * len(chosen)))), key=chosen.index)
    return tuple(chosen)


def parse_duration(value: Any, where: str = "fault") -> int:
    """30, '30s', '15m', '2h', '1d' -> seconds."""
    if isinstance(value, int) and value > 0:
        return value
    text = str(value)
    if text[:-1].isdigit() and text[-1:] in UNITS and int(text[:-1]) > 0:
        return int(text[:-1]) * UNITS[text[-1]]
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise FaultError(f"{where}: duration {value!r}: use seconds or a number with s, m, h or d (e.g. 30m)")


def parse_moment(value: Any, sim_start: int, where: str = "fault") -> int:
    """'+2h' (after the simulation start), Unix seconds, or an ISO date/time (UTC if no offset)."""
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    text = str(value)
    if text.startswith("+"):
        return sim_start + (0 if text in ("+0", "+0s") else parse_duration(text[1:], where))
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise FaultError(f"{where}: time {value!r}: use +2h (after the start), Unix seconds or an ISO date") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())


def garbage_payloads(device: str, boot: int, n: int) -> list[bytes]:
    """`n` payloads the gateway must dead-letter, in turn: not JSON, wrong version, no
    readings, NaN power, a truncated batch."""
    kinds = [
        b"\x00\xffnot json at all",
        b'{"v":99,"device":"' + device.encode() + b'","boot":1,"readings":[]}',
        b'{"v":1,"device":"' + device.encode() + b'","boot":' + str(boot).encode() + b"}",
        b'{"v":1,"device":"' + device.encode() + b'","boot":' + str(boot).encode()
        + b',"readings":[{"seq":0,"ts":1767225600,"power_w":NaN}]}',
        b'{"v":1,"device":"' + device.encode() + b'","boot":' + str(boot).encode() + b',"readings":[{"seq":',
    ]
    return [kinds[i % len(kinds)] for i in range(n)]
