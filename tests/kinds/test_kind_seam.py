"""A kind is its modules: the registry, `boucle flash` and `boucle calibrate`, the simulator
and the FIWARE routes read the kinds' descriptors, not kind names of their own.

The proof is a throwaway kind (`gas`, tests/kinds/gas/, never shipped) registered as a
shipped one is, in a fresh interpreter: each component takes it without a line changed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from boucle_fw import kinds as fw_kinds
from boucle_fw import sensors

from boucle import kinds
from tests.conftest import REPO


@pytest.fixture(scope="module")
def said() -> dict:
    done = subprocess.run([sys.executable, "-m", "tests.kinds.gas.check"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def section(said: dict, name: str) -> dict:
    """What one component made of the gas kind (its traceback fails the test)."""
    assert "error" not in said[name], said[name].get("error")
    return said[name]


def test_the_registry_checks_a_new_kind_from_its_descriptors(said):
    reg = section(said, "registry")
    assert reg["valid"] == "ok"
    assert reg["bound"] == "devices[1].rated_gas_m3_h: Input should be greater than 0. " \
                           "Fix: use a value more than 0 (docs/registry.md gives each key's range and default)"
    assert reg["missing"] == "devices[1].rated_gas_m3_h: a gas meter needs its maximum flow. " \
                             "Fix: add rated_gas_m3_h = 6 (m³/h, on its plate)"
    assert "'gas'" in reg["unknown_kind"] and reg["unknown_kind"].startswith("devices[1].kind: ")
    assert reg["wrong_profile"].startswith("devices[0].profile: profile 'gas-pulse' measures gas, not energy")
    assert reg["rated_per_hour"] == 6000.0  # its meter's rated field, in its counter's units an hour
    assert reg["counters"][-1] == "gas_dm3"


def test_flash_and_calibrate_take_a_new_kinds_options(said):
    flash = section(said, "flash")
    assert flash["help"] == "gas devices: the meter's maximum flow in m³/h (on its plate)"
    assert flash["entry"] == {"id": "esp32-abcdef", "site": "bakery", "kind": "gas", "profile": "gas-pulse",
                              "rated_gas_m3_h": 4.0}
    assert flash["flashed_valid"] == "ok"
    assert flash["missing"] == "profile gas-pulse is a gas meter: pass --rated-gas-m3-h"
    assert section(said, "calibrate")["steps"][1] == ["Stop when the dial shows 250 dm³ more.", "calibrate",
                                                      {"point": 1, "dm3": 250.0}]


def test_the_simulator_runs_a_new_kinds_model_beside_the_others(said):
    sim = section(said, "sim")
    assert sim["readings"] == 24 * 60 and sim["fields"] == ["gas_dm3", "gas_flow_dm3h"]
    assert sim["flows"] == [120.0, 1800.0]  # the model read its site: closed, then open
    assert sim["kinds"] == ["gas"] and sim["energy_rows"] == 24
    assert sim["resets"] == 1  # a meter kind: the counter_reset fault applies
    # 14 open hours at 1,800 dm³/h and 10 closed at 120: what the server counts of its counter
    assert sim["true_dm3"] == pytest.approx(14 * 1800 + 10 * 120)
    assert sim["counted_dm3"] == pytest.approx(sim["true_dm3"], abs=5)
    assert sim["state"]["gas_dm3"] > 0 and set(sim["state"]) == {"boot", "energy_wh", "water_l", "gas_dm3"}


def test_the_rollups_account_a_new_meter_kind_from_its_descriptor(said):
    # the day's readings, rolled up as the gateway does: what the simulator's ledger counted
    rolled = section(said, "rollup")
    assert rolled["dm3"] == pytest.approx(section(said, "sim")["counted_dm3"], abs=0.01)
    assert rolled["flags"] == [rolled["reset_flag"]]  # the counter reset, no rejected delta


def test_fiware_serves_a_new_kinds_entities(said):
    fiware = section(said, "fiware")
    assert fiware["paths"] == ["/v1/fiware/sites/{site_id}/gas-meters",
                               "/v1/fiware/territories/{territory_id}/gas-meters"]
    assert fiware["context"][-2] == "https://example.org/boucle-test/gas/context.jsonld"


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_each_shipped_kind_has_what_the_components_read(kind):
    server = kinds.server(kind)
    keys = {k.name for k in server.DEVICE_KEYS}
    meter = kinds.meter(kind)
    if meter is not None:
        assert meter.rated in keys, f"{kind}: its METER's rated field is not one of its DEVICE_KEYS"
    options = {o.name for o in server.CALIBRATE_OPTIONS}
    for t in sensors.TYPES:
        d = sensors.get(t)
        if d.KIND == kind and d.CALIBRATION:
            assert d.CALIBRATION["value"] in options, f"{t}: its calibration value is not an option of {kind}"
    model = kinds.component(kind, "SIMULATOR")
    assert model is not None and callable(model.virtual) and callable(model.step)
    assert (model.COUNTED is not None) == (meter is not None)
    fiware = kinds.component(kind, "FIWARE")
    if fiware is not None:
        assert all(hasattr(fiware, a) for a in ("CONTEXT", "PATH", "NAME", "SUMMARY", "states", "entity"))


# The components that read the descriptors, and must not name a kind, a profile, a sensor
# type or a reading field of their own (the simulator's stand-ins for a virtual board's
# sensors, simulator/firmware_devices.py, are per sensor type by nature).
COMPONENTS = ("boucle/registry.py", "workshop/flash.py", "workshop/calibrate.py", "workshop/provision.py",
              "cloud/fiware.py", "cloud/fiware_routes.py", "simulator/fleet.py", "simulator/devices.py",
              "simulator/profiles.py", "simulator/ledger.py", "simulator/models/__init__.py",
              "cloud/fiware_entities/__init__.py")


def test_the_components_name_no_kind_of_their_own():
    names = (set(kinds.KINDS) | set(sensors.profiles()) | set(sensors.TYPES) | {f[0] for f in fw_kinds.fields()})
    found = []
    for path in COMPONENTS:
        for node in ast.walk(ast.parse((REPO / path).read_text("utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path}:{node.lineno}: {node.value!r}")
    assert not found, "read these from the descriptors (boucle.kinds):\n" + "\n".join(found)
