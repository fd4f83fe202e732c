"""The ledger's two possible false alarms, on real stores (SQLite, InfluxDB): a replayed
duplicate of a sealed reading, and a write still in flight when its day was sealed. Each
must end as nothing or a new version of the day (late readings), never a mismatch."""

from __future__ import annotations

from boucle.protocol import reading_row
from gateway.ledger_stage import ledger_round
from gateway.output import Parsed, drop_sealed_repeats
from tests.ledger.conftest import DAY0, RECEIVED, day_readings

CLOSE = 6 * 3600
NOW = DAY0 + 2 * 86400 + CLOSE + 60  # both days closed


def _through_the_gateway(store, rows, received: float) -> int:
    """What the gateway's writer does with a batch (its dedup against sealed days, then the
    write): how many readings the store took as new (SQLite drops repeats itself)."""
    parsed = Parsed(readings=[reading_row(r) for r in rows])
    drop_sealed_repeats(parsed, store, received, CLOSE)
    return store.write_rows(parsed.readings, received)


def test_a_replayed_duplicate_of_a_sealed_reading_is_not_taken_for_tampering(store, registry):
    """A device (or another gateway's spool) sends a sealed reading again after its day was
    sealed. InfluxDB rewrote the point, its `received` past the sealing: with a late reading
    of the same day, the audit found the sealed readings no longer among those received by
    sealed_at (ALARM). The writer now keeps repeats of possibly sealed days out."""
    (entry, _) = ledger_round(store, registry, NOW, CLOSE, 7).sealed
    sealed = day_readings("atelier-grid", DAY0)
    replay = sealed[:3]
    late = type(sealed[0])("atelier-grid", 2, 0, DAY0 + 30, {"energy_wh": 1, "power_w": 5.0})
    assert _through_the_gateway(store, [*replay, late], NOW + 400) == 1
    # A repeat with other content is a conflict, not stored: the first copy stored wins.
    first = sealed[5]
    assert _through_the_gateway(store, [type(first)(first.device, first.boot, first.seq, first.ts,
                                                    {"energy_wh": 7})], NOW + 450) == 0
    (kept,) = [r for r in store.readings(first.device, first.ts, first.ts + 1, ["energy_wh", "received"])
               if r.ts == first.ts]
    assert kept.values == {"energy_wh": first.values["energy_wh"], "received": RECEIVED}
    found = ledger_round(store, registry, NOW + 600, CLOSE, 7, audit=True)
    assert found.mismatches == []
    assert [(e.day, e.version, e.count) for e in found.sealed] == [(DAY0, 2, entry.count + 1)]
    assert ledger_round(store, registry, NOW + 900, CLOSE, 7, audit=True).mismatches == []


def test_repeats_of_days_still_open_are_left_to_the_stores_own_dedup(store, registry):
    """Only days the ledger may have sealed are read before the write (a read per device
    per batch of old readings): today's repeats go straight to the store."""
    today = day_readings("fablab-grid", DAY0 + 86400)[:2]
    parsed = Parsed(readings=[reading_row(r) for r in today])
    drop_sealed_repeats(parsed, store, DAY0 + 86400 + 7200, CLOSE)
    assert parsed.duplicates == 0 and len(parsed.readings) == 2


def test_a_write_in_flight_when_its_day_was_sealed_makes_a_new_version(store, registry):
    """A batch stamped (received) before the entry's sealed_at but committed only after the
    sealing round read the day (a write longer than BOUCLE_LEDGER_SETTLE_S: a slow or
    retried InfluxDB write): the entry does not hold it, though its time says it should.
    The audit took that for tampering; it is a late reading, the day's next version."""
    settle = 60.0
    (entry, _) = ledger_round(store, registry, NOW, CLOSE, 7, settle_s=settle).sealed
    assert entry.sealed_at == NOW - settle
    stamped = entry.sealed_at - 5  # the batch's received, its write committed after the round
    batch = [type(r)(r.device, 3, r.seq, r.ts + 1, r.values) for r in (day_readings("atelier-pv", DAY0)[:2]
                                                                       + day_readings("fablab-grid", DAY0)[:1])]
    store.write_readings(batch, stamped)
    found = ledger_round(store, registry, NOW + 300, CLOSE, 7, settle_s=settle)
    assert found.mismatches == []
    assert [(e.day, e.version, e.count) for e in found.sealed] == [(DAY0, 2, entry.count + 3)]
    assert ledger_round(store, registry, NOW + 600, CLOSE, 7, audit=True, settle_s=settle).mismatches == []


def test_a_reading_dropped_beside_a_write_in_flight_is_still_reported(store, registry):
    """The in-flight explanation only removes whole batches received just before sealed_at:
    a sealed reading dropped is a mismatch even with such a batch beside it."""
    from tests.ledger.conftest import drop

    (entry, _) = ledger_round(store, registry, NOW, CLOSE, 7, settle_s=60.0).sealed
    store.write_readings([type(r)(r.device, 3, r.seq, r.ts + 1, r.values) for r in day_readings("atelier-pv", DAY0)[:1]],
                         entry.sealed_at - 5)
    drop(store, "atelier-grid", DAY0 + 600)  # the same count: found by the audit
    found = ledger_round(store, registry, NOW + 300, CLOSE, 7, audit=True, settle_s=60.0)
    assert found.sealed == [] and [m.day for m in found.mismatches] == [DAY0]
    assert "atelier: 288 readings sealed, 288 stored, same count but other readings" in found.mismatches[0].problem
