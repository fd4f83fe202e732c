"""Helpers for the simulator tests: drive a Fleet without a broker, read payloads back
the way the gateway and the API count them."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from boucle.registry import load_registry
from simulator.faults import resolve
from simulator.fleet import Fleet
from simulator.ledger import Ledger, read_ledger
from simulator.profiles import load_profiles

START = 1763596800  # 2025-11-20 00:00 UTC, a Thursday


@dataclass
class Capture:
    """What a fleet published, in order, with the simulated minute each payload left."""

    sent: list[tuple[int, str, bytes]] = field(default_factory=list)
    ledger_rows: list[dict] = field(default_factory=list)
    fleet: Fleet | None = None

    def telemetry(self, device: str | None = None) -> list[tuple[int, dict]]:
        """(sent at, parsed body) of the valid telemetry payloads, optionally of one device."""
        out = []
        for at, topic, payload in self.sent:
            if not topic.endswith("/telemetry"):
                continue
            try:
                body = json.loads(payload)
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("v") == 1 and "readings" in body and \
                    (device is None or body["device"] == device):
                out.append((at, body))
        return out


def drive(registry: Path, tmp_path: Path, hours: float, faults: list[dict] | None = None, seed: int = 1,
          batch: int = 1, start: int = START, interval: int = 60, keys: dict[str, bytes] | None = None) -> Capture:
    """Step a fleet minute by minute, publishing nothing: every payload is captured.
    `keys`: device keys (the key store's): those devices sign."""
    reg = load_registry(registry)
    ledger_path = tmp_path / f"ledger-{seed}-{len(faults or [])}.jsonl"
    ledger = Ledger(ledger_path)
    fleet = Fleet(reg, load_profiles(), seed, ledger, {}, faults=resolve(faults or [], [d.id for d in reg.devices],
                                                                         start, seed), start_ts=start, keys=keys)
    cap = Capture(fleet=fleet)
    end = start + int(hours * 3600)
    for t in range(start, end, interval):
        fleet.step(t, interval)
        cap.sent += [(t, tp, p) for tp, p in fleet.status_out]
        fleet.status_out.clear()
        cap.sent += [(t, tp, p) for tp, p in fleet.payloads(batch)]
    cap.sent += [(end, tp, p) for tp, p in fleet.flush()]
    ledger.close()
    cap.ledger_rows = read_ledger(ledger_path)
    return cap


def server_wh(capture: Capture) -> dict[tuple[str, int], float]:
    """Wh per (device, hour) as the server counts it: readings deduplicated by
    (device, boot, seq), ordered by time, deltas between consecutive readings (a counter
    that went down restarted from zero: its new value counts in full), each spread linearly
    over the time between its two readings."""
    readings: dict[str, dict[tuple[int, int], tuple[int, int]]] = defaultdict(dict)
    for _at, body in capture.telemetry():
        for r in body["readings"]:
            if "energy_wh" in r:
                readings[body["device"]][(body["boot"], r["seq"])] = (r["ts"], r["energy_wh"])
    out: dict[tuple[str, int], float] = defaultdict(float)
    for device, by_id in readings.items():
        last = None
        for (_boot, _seq), (ts, wh) in sorted(by_id.items(), key=lambda kv: (kv[1][0], kv[0])):
            if last is not None:
                last_ts, last_wh = last
                delta = wh - last_wh if wh >= last_wh else wh
                if ts == last_ts:
                    out[(device, ts - ts % 3600)] += delta
                for hour in range(last_ts - last_ts % 3600, ts, 3600):
                    inside = min(ts, hour + 3600) - max(last_ts, hour)
                    out[(device, hour)] += delta * inside / (ts - last_ts)
            last = (ts, wh)
    return dict(out)


def ledger_sum(rows: list[dict], field_name: str) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = defaultdict(float)
    for row in rows:
        if row.get(field_name):
            out[(row["device"], row["hour"])] += row[field_name]
    return dict(out)
