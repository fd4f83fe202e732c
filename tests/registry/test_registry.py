"""The registry loader: the example is complete, and bad files fail with file, key, line and fix."""

from datetime import datetime

import pytest

from boucle.registry import RegistryError, RegistryFile, is_open, load_registry, parse_opening_hours
from tests.conftest import EXAMPLE_REGISTRY

EXAMPLE = EXAMPLE_REGISTRY.read_text()


def test_example_is_realistic():
    reg = load_registry(EXAMPLE_REGISTRY)
    assert len(reg.territories) == 3
    assert {t.kind for t in reg.territories} == {"commune", "industrial_zone", "intercommunality"}
    assert all(t.population > 0 for t in reg.territories)
    assert len(reg.sites) >= 12
    assert {"fablab", "sme_workshop", "bakery", "school", "plant", "collection_point"} <= {s.kind for s in reg.sites}
    assert any(d.channel == "pv_production" for d in reg.devices)
    assert len({d.stream for d in reg.devices if d.kind == "waste"}) >= 4
    water = [d for d in reg.devices if d.kind == "water"]
    assert len(water) == 6 and all(d.profile == "water-pulse" and d.rated_flow_m3_h for d in water)
    assert {reg.site(d.site).territory for d in water} == {t.id for t in reg.territories}
    assert reg.needs and all(reg.site(n.site) for n in reg.needs)
    assert reg.route("cc-monts-lyonnais", "biowaste") == "anaerobic_digestion"
    assert reg.route("ecully", "biowaste") == "composting"


def broken(tmp_path, old: str, new: str, count: int = 1):
    assert old in EXAMPLE
    path = tmp_path / "registry.toml"
    path.write_text(EXAMPLE.replace(old, new, count))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    return info.value, path


def line_of(path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_unknown_territory_names_key_line_and_fix(tmp_path):
    err, path = broken(tmp_path, 'territory = "zi-meyzieu"', 'territory = "zi-meyzeiu"')
    assert err.key == "sites[5].territory"
    assert err.line == line_of(path, 'territory = "zi-meyzeiu"')
    assert "ecully" in err.fix and str(path) in str(err)


def test_bad_enum_value(tmp_path):
    err, path = broken(tmp_path, 'channel = "pv_production"', 'channel = "solar"')
    assert err.key == "devices[1].channel"
    assert err.line == line_of(path, 'channel = "solar"')
    assert "grid_import" in err.fix


def test_missing_key(tmp_path):
    err, _ = broken(tmp_path, "population = 18512\n", "")
    assert err.key == "territories[0].population" and err.fix == "add this key"


def test_toml_syntax_error_has_a_line(tmp_path):
    err, path = broken(tmp_path, 'name = "Écully"', 'name = "Écully')
    assert err.key == "(syntax)" and err.line == line_of(path, 'name = "Écully')


def test_duplicate_device_id(tmp_path):
    err, _ = broken(tmp_path, 'id = "ecully-fablab-pv"', 'id = "ecully-fablab-grid"')
    assert err.key == "devices[1].id" and "duplicate" in err.problem


def test_a_profile_of_another_kind_is_refused(tmp_path):
    err, _ = broken(tmp_path, 'kind = "water"\nrated_flow_m3_h = 2.5\nprofile = "water-pulse"',
                    'kind = "water"\nrated_flow_m3_h = 2.5\nprofile = "energy-pulse"')
    assert err.key.endswith(".profile") and "measures energy, not water" in err.problem
    assert 'kind = "energy"' in err.fix
    err, _ = broken(tmp_path, 'kind = "water"', 'kind = "gas"')
    assert err.key.endswith(".kind") and "water" in err.fix


def test_unknown_waste_stream(tmp_path):
    err, _ = broken(tmp_path, 'stream = "glass"', 'stream = "glas"')
    assert err.key.endswith(".stream") and "glass" in err.fix


def test_bad_opening_hours(tmp_path):
    err, _ = broken(tmp_path, 'opening_hours = "Mo-Fr 07:00-16:00"', 'opening_hours = "Mo-Fr 16:00-07:00"')
    assert "opening_hours" in err.key and "08:00-18:00" in err.problem


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path / "nope.toml")
    assert "--registry" in info.value.fix


def test_opening_hours():
    hours = parse_opening_hours("Mo,Tu,Th,Fr 08:20-16:30; We 08:20-11:30; Su off")
    assert is_open(hours, datetime(2026, 11, 25, 9, 0))  # a Wednesday
    assert not is_open(hours, datetime(2026, 11, 25, 12, 0))
    assert not is_open(hours, datetime(2026, 11, 29, 10, 0))  # Sunday
    assert is_open(parse_opening_hours("24/7"), datetime(2026, 11, 29, 3, 0))
    assert parse_opening_hours("Sa-Mo 10:00-12:00").keys() == {5, 6, 0}


def test_registry_file_reloads_and_keeps_last_good(tmp_path):
    path = tmp_path / "registry.toml"
    path.write_text(EXAMPLE)
    watched = RegistryFile(path)
    assert watched.current().territory("ecully").population == 18512
    path.write_text(EXAMPLE.replace("population = 18512", "population = 19000"))
    import os
    os.utime(path, ns=(1, 2))  # make sure the change is seen whatever the clock resolution
    assert watched.current().territory("ecully").population == 19000
    path.write_text("not = [valid")
    os.utime(path, ns=(3, 4))
    assert watched.current().territory("ecully").population == 19000


GRID = 'id = "ecully-fablab-grid"\nsite = "ecully-fablab"\n'


def _moved(tmp_path, moves: str):
    text = EXAMPLE_REGISTRY.read_text()
    assert GRID in text
    path = tmp_path / "r.toml"
    path.write_text(text.replace(GRID, GRID + f"moves = [{moves}]\n", 1))
    return path


def test_a_device_that_moved_has_its_stays_in_order(tmp_path):
    reg = load_registry(_moved(tmp_path, '{ site = "ecully-bakery", until = 2026-01-01T00:00:00Z }, '
                                         '{ site = "ecully-school", until = 2026-03-01T10:15:00+01:00 }'))
    device = reg.device("ecully-fablab-grid")
    stays = device.tenures()
    assert [s for s, _, _ in stays] == ["ecully-bakery", "ecully-school", "ecully-fablab"]
    assert stays[1][1:] == (1767225600, 1772356500)
    assert device.site_at(1767225599) == "ecully-bakery" and device.site_at(1772356500) == "ecully-fablab"


@pytest.mark.parametrize("moves, problem", [
    ('{ site = "nowhere", until = 2026-01-01T00:00:00Z }', "site 'nowhere' does not exist"),
    ('{ site = "ecully-bakery", until = 2026-01-01T00:07:00Z }', "not on a quarter-hour"),
    ('{ site = "ecully-bakery", until = 2026-02-01T00:00:00Z }, { site = "ecully-school", until = 2026-01-01T00:00:00Z }',
     "not in time order"),
])
def test_bad_moves_name_the_key_and_the_fix(tmp_path, moves, problem):
    with pytest.raises(RegistryError, match=problem) as err:
        load_registry(_moved(tmp_path, moves))
    assert err.value.key.endswith(".moves") and err.value.fix


def test_a_depot_with_swapped_coordinates_names_the_key(tmp_path):
    err, path = broken(tmp_path, "depot = [45.7790, 4.7702]", "depot = [4.7702, 45.7790]")
    assert err.key == "territories[0].collection"
    assert err.line == line_of(path, "depot = [4.7702, 45.7790]")
    assert "km from the territory's centroid" in err.problem and "latitude first" in err.fix


@pytest.mark.parametrize("old, new, key", [
    ('round_days = "Mo-Fr"', 'round_days = "Monday"', "territories[0].collection.round_days"),
    ('round_time = "06:00"', 'round_time = "6h"', "territories[0].collection.round_time"),
    ("alerts = { base_load_ratio = 2.0 }", 'alerts = { off = ["leaks"] }', "territories[2].alerts.off[0]"),
])
def test_bad_collection_and_alert_settings_name_the_key(tmp_path, old, new, key):
    err, _ = broken(tmp_path, old, new)
    assert err.key == key
