"""Run in a fresh interpreter (tests/kinds/test_kind_seam.py): register the throwaway `gas`
kind, then ask each component what it makes of it; prints what they said as JSON, one
section per component (a section that raised holds its traceback under "error", so only
that component's test fails)."""

from tests.kinds.gas import install

install()

import argparse
import functools
import json
import sys
import tempfile
import traceback
from pathlib import Path

from boucle import kinds
from boucle.registry import RegistryError, load_registry

REGISTRY = """
[[territories]]
id = "t1"
name = "T"
kind = "commune"
population = 1000
centroid = [45.77, 4.77]

[[sites]]
id = "bakery"
territory = "t1"
name = "Bakery"
kind = "bakery"
location = [45.77, 4.77]
opening_hours = "Mo-Su 06:00-20:00"

[[devices]]
id = "bakery-grid"
site = "bakery"
kind = "energy"
channel = "grid_import"
rated_power_w = 12000
profile = "energy-pzem"

[[devices]]
id = "bakery-gas"
site = "bakery"
kind = "gas"
profile = "gas-pulse"
rated_gas_m3_h = 6
"""
out: dict = {}
tmp = Path(tempfile.mkdtemp())


def registry_says(text: str) -> str:
    path = tmp / "registry.toml"
    path.write_text(text, "utf-8")
    try:
        load_registry(path)
    except RegistryError as exc:
        return f"{exc.key}: {exc.problem}. Fix: {exc.fix}"
    return "ok"


def section(name):
    def run(fn):
        try:
            out[name] = fn()
        except (Exception, SystemExit):  # noqa: BLE001 - reported to the test (argparse exits)
            out[name] = {"error": traceback.format_exc()}
        return fn
    return run


@functools.cache
def loaded():
    """The registry, and its gas meter."""
    path = tmp / "fleet.toml"
    path.write_text(REGISTRY, "utf-8")
    registry = load_registry(path)
    return registry, registry.device("bakery-gas")


@section("registry")
def _registry():
    """The kind, its key with its bound, its check, a profile of the kind, its rated rate."""
    return {
        "valid": registry_says(REGISTRY),
        "bound": registry_says(REGISTRY.replace("rated_gas_m3_h = 6", "rated_gas_m3_h = -1")),
        "missing": registry_says(REGISTRY.replace("rated_gas_m3_h = 6", "")),
        "unknown_kind": registry_says(REGISTRY.replace('kind = "gas"', 'kind = "steam"')),
        "wrong_profile": registry_says(REGISTRY.replace('profile = "energy-pzem"', 'profile = "gas-pulse"')),
        "rated_per_hour": kinds.rated_per_hour("gas", loaded()[1]),
        "counters": list(kinds.COUNTERS),
    }


@section("flash")
def _flash():
    """boucle flash: its option, the registry entry it writes, the option it requires."""
    from workshop import flash, provision, registry_edit

    parser = argparse.ArgumentParser()
    flash.configure(parser)
    argv = ["--site", "bakery", "--profile", "gas-pulse", "--wifi-ssid", "x"]
    args = parser.parse_args([*argv, "--rated-gas-m3-h", "4"])
    entry = {"id": "esp32-abcdef", "site": "bakery", "kind": provision.profile_kind("gas-pulse"),
             "profile": "gas-pulse", **flash.device_fields("gas", args)}
    try:
        flash.device_fields("gas", parser.parse_args(argv))
        missing = None
    except Exception as exc:  # noqa: BLE001 - what flash says
        missing = str(exc)
    return {"help": next(a.help for a in parser._actions if "--rated-gas-m3-h" in a.option_strings),
            "entry": entry, "flashed_valid": registry_says(registry_edit.with_device(REGISTRY, entry)),
            "missing": missing}


@section("calibrate")
def _calibrate():
    """boucle calibrate: its option gives the type's steps their value."""
    from workshop import calibrate

    parser = argparse.ArgumentParser()
    calibrate.configure(parser)
    steps = calibrate._steps_for("gas-pulse", parser.parse_args(["bakery-gas", "--known-dm3", "250"]))
    return {"steps": [[s.instruction, s.cmd, s.args] for s in steps]}


START = 1763596800  # Thursday 2025-11-20 00:00 UTC
readings: list[dict] = []


@section("sim")
def _sim():
    """The simulator: the kind's model beside energy at the same site, its counter in the
    ledger and the state file, the counter-reset fault."""
    from simulator.faults import resolve
    from simulator.fleet import Fleet, save_state
    from simulator.ledger import Ledger, read_ledger
    from simulator.profiles import load_profiles

    ledger_path = tmp / "ledger.jsonl"
    ledger = Ledger(ledger_path)
    faults = resolve([{"kind": "counter_reset", "start": "+13h", "devices": "bakery-gas"}], ["bakery-gas"],
                     START, 1)
    fleet = Fleet(loaded()[0], load_profiles(), 1, ledger, {}, faults=faults, start_ts=START)
    for t in range(START, START + 24 * 3600, 60):
        fleet.step(t, 60)
        for topic, payload in fleet.payloads(1):
            body = json.loads(payload)
            if topic.endswith("/telemetry") and body["device"] == "bakery-gas":
                readings.extend(body["readings"])
    list(fleet.flush())
    ledger.close()
    save_state(tmp / "state.json", fleet.state)
    every = read_ledger(ledger_path)
    rows = [r for r in every if r["device"] == "bakery-gas"]
    return {
        "readings": len(readings),
        "fields": sorted({k for r in readings for k in r if k.startswith("gas")}),
        "flows": sorted({r["gas_flow_dm3h"] for r in readings}),
        "counted_dm3": sum(r.get("dm3", 0) for r in rows),
        "true_dm3": sum(r.get("true_dm3", 0) for r in rows),
        "kinds": sorted({r["kind"] for r in rows}),
        "resets": sum(r.get("counter_resets", 0) for r in rows),
        "energy_rows": sum(1 for r in every if r["device"] == "bakery-grid"),
        "state": json.loads((tmp / "state.json").read_text())["bakery-gas"],
    }


@section("rollup")
def _rollup():
    """The rollups: the simulated day's counter accrues as a meter's, bounded by its rated flow."""
    from boucle import rollup
    from boucle.storage import StoredReading

    stored = rollup.Readings.of([StoredReading(r["ts"], 1, r["seq"], {"gas_dm3": r["gas_dm3"]}) for r in readings])
    intervals = rollup.day_intervals("gas", START, stored, kinds.rated_per_hour("gas", loaded()[1]))
    return {"dm3": int(intervals.amount.sum()) / 1000,
            "flags": sorted({int(f) for f in intervals.flags[:, 1]}) if len(intervals.flags) else [],
            "reset_flag": rollup.RESET}


@section("fiware")
def _fiware():
    """FIWARE: the kind's routes, and its context in every entity."""
    from cloud import fiware, fiware_routes

    return {"paths": sorted(r.path for r in fiware_routes.router.routes if "gas" in r.path),
            "context": fiware.context()}


json.dump(out, sys.stdout)
