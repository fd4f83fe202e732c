"""The InfluxDB store against a real InfluxDB (Debian's 1.6.7, v1 API)."""

import zlib

import pytest

from boucle.protocol import Reading
from boucle.storage import DeadLetter, DeviceState, open_store
from boucle.storage.influx import StoreError


def readings(device="ecully-fablab-grid", boot=1, n=10, t0=1767225000):
    return [Reading(device, boot, s, t0 + 60 * s, {"energy_wh": 1000 + 7 * s, "power_w": 420.5}) for s in range(n)]


@pytest.fixture
def store(influxdb):
    s = open_store(f"influx+http://127.0.0.1:{influxdb.port}/boucle_test",
                   device_tags=lambda d, ts: {"site": "ecully-fablab", "territory": "ecully", "kind": "energy"})
    yield s
    s.close()


def test_write_then_read_back(store):
    store.write_readings(readings(), 1767226000.0)
    got = store.readings("ecully-fablab-grid", 1767225000 + 120, 1767225000 + 600, ["energy_wh", "power_w"])
    assert [r.seq for r in got] == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # baseline (seq 1) then the period
    assert got[0].values == {"energy_wh": 1007, "power_w": 420.5}
    assert store.reading_counts(["ecully-fablab-grid", "other"], 0, 2**31) == {"ecully-fablab-grid": 10, "other": 0}
    assert store.last_seen(["ecully-fablab-grid"])["ecully-fablab-grid"] == (1767225000 + 540, 1767226000.0)
    tags = store.query_series('SHOW TAG VALUES FROM "readings" WITH KEY = "territory"')
    assert tags[0]["values"] == [["territory", "ecully"]]


def test_rewrite_is_idempotent(store):
    store.write_readings(readings(), 1767226000.0)
    before = store.query_series('SELECT * FROM "readings"')
    store.write_readings(readings(), 1767226000.0)
    store.write_readings(readings()[3:5], 1767226000.0)
    assert store.query_series('SELECT * FROM "readings"') == before


def test_dead_letters_and_states(store):
    letter = DeadLetter(1767226000.5, "boucle/v1/x/telemetry", "not_json", "", "not UTF-8 JSON", b"\xff{", "gw:1")
    store.write_dead_letters([letter, letter])
    assert store.dead_letters() == [letter]
    store.write_device_states([DeviceState("ecully-fablab-grid", "health", {"buffer_depth": 3}, 1767226001.0)])
    state = store.device_states(["ecully-fablab-grid"])["ecully-fablab-grid"]["health"]
    assert state.doc == {"buffer_depth": 3}


def test_letters_received_at_one_instant_are_all_kept(store):
    """A fetch from the cluster hands over a batch at one instant: letters of one device and
    error received together, even with keys whose spread digits agree, stay distinct points."""
    keys, by_digits = [], {}
    for i in range(10_000):
        key = f"key-{i}"
        other = by_digits.setdefault(zlib.crc32(key.encode()) % 1000, key)
        if other != key:
            keys = [other, key]
            break
    letters = [DeadLetter(1767226000.25, "boucle/v1/x/telemetry", "schema", "v", "protocol version 2 is not 1",
                          f"payload {key}".encode(), key, "x") for key in keys + ["key-other"]]
    store.write_dead_letters(letters)
    store.write_dead_letters(letters[:2])  # written again (a retry): the same points
    assert sorted(d.key for d in store.dead_letters()) == sorted(keys + ["key-other"])


def test_data_version_changes_on_write(store):
    v0 = store.data_version()
    store.write_readings(readings(n=1), 1767226000.0)
    assert store.data_version() != v0


def test_a_stopped_server_raises(influxdb, store):
    influxdb.stop()
    with pytest.raises(StoreError):
        store.write_readings(readings(n=1), 1767226000.0)
    influxdb.start()
    store.write_readings(readings(n=1), 1767226000.0)


def test_rows_with_awkward_tags_and_every_field_read_back(influxdb):
    """The hand-made line protocol: tag values needing escapes (registry ids never do, this
    is defence), integer and decimal fields with their declared types (a decimal sent as
    420 stays a float field)."""
    from boucle.protocol import MEASUREMENT_FIELDS, reading_row

    tags = {"site": "atelier, bâtiment=B 2", "territory": "lyon", "kind": "energy", "stream": ""}
    s = open_store(f"influx+http://127.0.0.1:{influxdb.port}/boucle_rows", device_tags=lambda d, ts: tags)
    try:
        values = {"energy_wh": 12345, "power_w": 420, "voltage_v": 231.7, "current_a": 1.825, "power_factor": 0.97,
                  "weight_g": 8100, "fill_pct": 55.5, "temp_c": -3.25, "water_l": 48213, "flow_lpm": 6.5}
        rows = [reading_row(Reading("odd dev,1", 2, seq, 1767225000 + 60 * seq, values)) for seq in range(3)]
        assert s.write_rows(rows, 1767226000.25) == 3
        got = s.readings("odd dev,1", 0, 2**31, MEASUREMENT_FIELDS)
        assert [(r.boot, r.seq, r.ts) for r in got] == [(2, 0, 1767225000), (2, 1, 1767225060), (2, 2, 1767225120)]
        assert all(r.values == values for r in got)
        types = dict(s.query_series('SHOW FIELD KEYS FROM "readings"')[0]["values"])
        assert types["energy_wh"] == types["weight_g"] == types["water_l"] == "integer"
        assert types["power_w"] == types["temp_c"] == "float"
        sites = s.query_series('SHOW TAG VALUES FROM "readings" WITH KEY IN ("site", "territory")')[0]["values"]
        assert sorted(sites) == [["site", "atelier, bâtiment=B 2"], ["territory", "lyon"]]
        assert s.last_seen(["odd dev,1"])["odd dev,1"] == (1767225120, 1767226000.25)
    finally:
        s.close()


def test_readings_are_tagged_with_the_site_they_were_taken_at(influxdb, tmp_path):
    """A meter moved between two sites (registry `moves`): the gateway's tags follow the
    reading's time, so Grafana's per-site queries on raw readings agree with the indicators."""
    from boucle.settings import GatewaySettings, load_settings
    from gateway.service import Gateway
    from tests.conftest import EXAMPLE_REGISTRY

    moved_at = 1767225000 + 600  # 2026-01-01T00:00:00Z
    text = EXAMPLE_REGISTRY.read_text().replace(
        'id = "ecully-fablab-grid"\nsite = "ecully-fablab"',
        'id = "ecully-fablab-grid"\nsite = "ecully-bakery"\n'
        'moves = [{ site = "ecully-fablab", until = 2026-01-01T00:00:00Z }]', 1)
    assert "moves" in text
    registry = tmp_path / "registry.toml"
    registry.write_text(text)
    gateway = Gateway(load_settings(GatewaySettings, {}, registry=str(registry), spool_path=str(tmp_path / "spool.db"),
                                    store_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    assert gateway.device_tags("ecully-fablab-grid", moved_at - 1)["site"] == "ecully-fablab"
    assert gateway.device_tags("ecully-fablab-grid", moved_at)["site"] == "ecully-bakery"
    s = open_store(f"influx+http://127.0.0.1:{influxdb.port}/boucle_moves", device_tags=gateway.device_tags)
    try:
        s.write_readings(readings(n=20), 1767226000.0)  # 10 before the move, 10 after
        counts = {x["tags"]["site"]: x["values"][0][1]
                  for x in s.query_series('SELECT count("seq") FROM "readings" GROUP BY "site"')}
        assert counts == {"ecully-fablab": 10, "ecully-bakery": 10}
    finally:
        s.close()
        gateway.store.close()
        gateway.spool.close()


def test_a_store_opened_while_the_server_is_down_puts_its_rollups_where_readers_look(influxdb):
    """A gateway restarted during an InfluxDB outage must not settle for the default retention
    policy: its rollups would be written where no reader looks (seen in the chaos test)."""
    from boucle import rollup
    from boucle.rollup import DAY, Readings

    influxdb.stop()
    url = f"influx+http://127.0.0.1:{influxdb.port}/boucle_late"
    early = open_store(url)  # no server: no error, nothing settled
    with pytest.raises(StoreError):
        early.write_readings(readings(), 1767226000.0)
    influxdb.start()
    early.write_readings(readings(), 1767226000.0)
    day = rollup.day_start(1767225000)
    stored = Readings.of(early.readings("ecully-fablab-grid", day, day + DAY, rollup.FIELDS, after=True))
    row = rollup.day_row("ecully-fablab-grid", "energy", rollup.day_intervals("energy", day, stored, None))
    early.write_rollups([row], [])
    reader = open_store(url)
    try:
        assert reader.day_rollups(["ecully-fablab-grid"], day, day + DAY) == [row]
        policies = reader.query_series('SHOW RETENTION POLICIES ON "boucle_late"')[0]["values"]
        assert "boucle_rollups" in [p[0] for p in policies]
    finally:
        reader.close()
        early.close()
