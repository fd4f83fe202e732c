import pytest

from boucle.registry import load_registry
from boucle.storage.sqlite import SQLiteStore
from gateway.aggregate import recompute_rollups
from gateway.parse import Rejected, parse_telemetry
from simulator.fleet import Fleet
from simulator.ledger import Ledger, read_ledger
from simulator.profiles import load_profiles
from tests.conftest import minute_registry
from tests.indicators.builders import utc

SIM_START, SIM_END = utc("2026-03-28T00:00"), utc("2026-03-30T00:00")
"""Two simulated days across the spring DST change (Europe/Paris)."""


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "x.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """The example registry's fleet (3 territories, 34 devices) over two days, stored as the
    gateway stores it: the real parser, hourly batches, rollups recomputed every six batches
    (the aggregate stage lagging behind ingest, as it does under load).

    Yields (registry, store, ledger rows)."""
    folder = tmp_path_factory.mktemp("sim")
    registry = load_registry(minute_registry())  # a reading a minute: the truth to the minute
    devices = {d.id: d for d in registry.devices}
    ledger = Ledger(folder / "ledger.jsonl")
    fleet = Fleet(registry, load_profiles(), 11, ledger)
    store = SQLiteStore(folder / "x.db")
    dirty: dict[str, tuple[int, int]] = {}
    for ts in range(SIM_START, SIM_END, 60):
        fleet.step(ts, 60)
        if ts % 3600 == 3600 - 60:
            _store_payloads(store, fleet.payloads(1), now=ts + 60, dirty=dirty)
            if ts % (6 * 3600) == 6 * 3600 - 60:
                _recompute(store, dirty, devices)
    _store_payloads(store, fleet.flush(), now=SIM_END, dirty=dirty)
    _recompute(store, dirty, devices)
    ledger.close()
    yield registry, store, read_ledger(folder / "ledger.jsonl")
    store.close()


def _store_payloads(store, payloads, now, dirty):
    """What the gateway does, minus MQTT: parse each payload (the real parser), store it,
    and note each device's span of new readings (the spool's dirty list)."""
    batch = []
    for topic, payload in payloads:
        if not topic.endswith("/telemetry"):
            continue  # status, health, command acknowledgements
        readings = parse_telemetry(topic.split("/")[-2], payload, known_devices=None, now=now)
        assert not isinstance(readings, Rejected), readings
        batch += readings
    store.write_readings(batch, received=float(now))
    for r in batch:
        lo, hi = dirty.get(r.device, (r.ts, r.ts))
        dirty[r.device] = (min(lo, r.ts), max(hi, r.ts))


def _recompute(store, dirty, devices):
    """The gateway's aggregate stage: each dirty device's windows around its new readings."""
    for device, (lo, hi) in dirty.items():
        assert recompute_rollups(store, devices[device], lo, hi)
    dirty.clear()
