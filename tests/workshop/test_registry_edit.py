"""Registry edits: appended as text, validated by the registry loader, ids never reused silently."""

from __future__ import annotations

import tomllib

import pytest

from boucle.registry import load_registry
from workshop import registry_edit

ENTRY = {"id": "esp32-a1b2c3", "site": "ecully-fablab", "kind": "energy", "channel": "grid_import",
         "rated_power_w": 9000.0, "interval_s": 60, "profile": "energy-pzem"}


def test_device_appended_keeps_the_file_and_loads(registry_copy):
    before = registry_copy.read_text()
    after = registry_edit.with_device(before, ENTRY)
    assert after.startswith(before.rstrip("\n"))  # comments and layout untouched
    registry_copy.write_text(after)
    device = load_registry(registry_copy).device("esp32-a1b2c3")
    assert device is not None and device.site == "ecully-fablab" and device.rated_power_w == 9000


def test_existing_id_refused_unless_forced(registry_copy):
    text = registry_edit.with_device(registry_copy.read_text(), ENTRY)
    with pytest.raises(registry_edit.RegistryEditError, match="already registered.*--force"):
        registry_edit.with_device(text, ENTRY)
    forced = registry_edit.with_device(text, {**ENTRY, "rated_power_w": 12000.0}, force=True)
    devices = [d for d in tomllib.loads(forced)["devices"] if d["id"] == "esp32-a1b2c3"]
    assert devices == [{**ENTRY, "rated_power_w": 12000.0}]


def test_force_replaces_a_hand_written_device_in_place(registry_copy):
    text = registry_copy.read_text()
    forced = registry_edit.with_device(text, {**ENTRY, "id": "zim-fablab-grid", "site": "zim-fablab"}, force=True)
    registry = registry_edit.check(forced)
    assert [d.id for d in registry.devices].count("zim-fablab-grid") == 1
    assert len(registry.devices) == len(registry_edit.check(text).devices)
    # the device after it is intact
    assert registry.device("zim-fablab-bin-plastic").stream == "plastic_offcuts"


def test_unknown_site_and_invalid_entries_refused(registry_copy):
    text = registry_copy.read_text()
    with pytest.raises(registry_edit.RegistryEditError, match="site 'nowhere' is not in"):
        registry_edit.with_device(text, {**ENTRY, "site": "nowhere"})
    with pytest.raises(registry_edit.RegistryEditError, match="channel"):
        registry_edit.with_device(text, {k: v for k, v in ENTRY.items() if k != "channel"})
    with pytest.raises(registry_edit.RegistryEditError, match="stream"):
        registry_edit.with_device(text, {**ENTRY, "kind": "waste", "stream": "unobtainium"})


def test_calibration_set_then_merged(registry_copy):
    text = registry_edit.with_device(registry_copy.read_text(), ENTRY)
    text = registry_edit.with_calibration(text, "esp32-a1b2c3", {"tare_offset": -8421.0})
    text = registry_edit.with_calibration(text, "esp32-a1b2c3", {"scale": 421.5})
    assert load_registry_text(registry_copy, text).device("esp32-a1b2c3").calibration == {
        "tare_offset": -8421.0, "scale": 421.5}
    # a hand-written device without the key yet
    text = registry_edit.with_calibration(text, "zim-metal-grid", {"ct_amps_per_count": 0.0242})
    assert load_registry_text(registry_copy, text).device("zim-metal-grid").calibration == {"ct_amps_per_count": 0.0242}


def load_registry_text(path, text):
    path.write_text(text)
    return load_registry(path)


def test_toml_values_round_trip():
    value = {"a b": "é\"\\", "n": 3, "x": 0.1, "flag": True, "list": [1, 2]}
    assert tomllib.loads(f"t = {registry_edit.toml_value(value)}")["t"] == value
