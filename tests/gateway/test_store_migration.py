"""A store made by the code before sensor descriptors (main at 9ecea0a, its readings table
without the water fields; tests/gateway/data/make_store_before_descriptors.py made it)
opens, gains the new fields' columns, and keeps everything it had."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path

from boucle.protocol import MEASUREMENT_FIELDS, Reading
from boucle.storage.sqlite import SQLiteStore

OLD = Path(__file__).with_name("data") / "store-before-descriptors.db"
T0 = 1767225600


def _columns(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(readings)")]


def _dump(path) -> dict[str, list]:
    with sqlite3.connect(path) as conn:
        old = ["device", "boot", "seq", "ts", "energy_wh", "power_w", "voltage_v", "weight_g", "temp_c", "received"]
        return {
            "readings": conn.execute(f"SELECT {', '.join(old)} FROM readings ORDER BY device, boot, seq").fetchall(),
            # the columns the old store had (opening it also adds the rollups' digests)
            "rollup_days": conn.execute("SELECT device, day, slots, covered, events FROM rollup_days "
                                        "ORDER BY device, day").fetchall(),
            "rollup_months": conn.execute("SELECT device, month, days, events FROM rollup_months "
                                          "ORDER BY device, month").fetchall(),
            "rollup_month_slots": conn.execute("SELECT device, month, slots, covered FROM rollup_month_slots "
                                               "ORDER BY device").fetchall(),
            "dead_letters": conn.execute("SELECT received, topic, error, payload FROM dead_letters").fetchall(),
            "device_state": conn.execute("SELECT * FROM device_state").fetchall(),
            "meta": conn.execute("SELECT * FROM meta").fetchall(),
        }


def test_an_old_store_opens_gains_the_new_columns_and_loses_nothing(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(OLD, path)
    assert "water_l" not in _columns(path)
    before = _dump(path)
    assert len(before["readings"]) == 40 and before["rollup_days"] and before["dead_letters"]

    store = SQLiteStore(path)
    assert set(MEASUREMENT_FIELDS) <= set(_columns(path))
    assert _dump(path) == before  # every row as it was, the new columns empty
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM readings WHERE water_l IS NOT NULL OR flow_lpm IS NOT NULL"
                            ).fetchone() == (0,)
    # the old readings read back through the store, and a water meter's are stored beside them
    old = store.readings("old-meter", T0, T0 + 3600, ["energy_wh", "voltage_v"])
    assert [r.values["energy_wh"] for r in old] == [1000 + 7 * i for i in range(30)]
    store.write_readings([Reading("new-water", 1, 0, T0, {"water_l": 48213, "flow_lpm": 6.5})], received=T0 + 1.0)
    (got,) = store.readings("new-water", T0, T0 + 1, ["water_l", "flow_lpm"])
    assert got.values == {"water_l": 48213, "flow_lpm": 6.5}
    assert store.dead_letters()[0].payload == b"{oops"
    store.close()
    SQLiteStore(path).close()  # opening again changes nothing
    assert _columns(path).count("water_l") == 1


def _open(path: str, start) -> None:
    start.wait()
    SQLiteStore(path).close()


def _open_together(path: Path, processes: int = 3) -> list[int | None]:
    """The exit codes of `processes` processes that open the store at the same moment."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes)
    openers = [ctx.Process(target=_open, args=(str(path), start)) for _ in range(processes)]
    for p in openers:
        p.start()
    for p in openers:
        p.join(120)
    return [p.exitcode for p in openers]


def test_processes_opening_an_old_store_together_all_migrate_it(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(OLD, path)
    assert _open_together(path) == [0, 0, 0]
    assert set(MEASUREMENT_FIELDS) <= set(_columns(path))


def _before_bounds(path: Path) -> None:
    """The old store as the code before the dead-letter bounds (90e058d) left it."""
    with sqlite3.connect(path) as conn:
        for name in ("dead_letter_kept", "dead_letter_dropped"):
            conn.execute(f"DROP TRIGGER {name}")
        for name in ("dead_letters_by_device", "dead_letters_by_age"):
            conn.execute(f"DROP INDEX {name}")
        conn.execute("DROP TABLE dead_letter_tally")
        conn.execute("ALTER TABLE dead_letters DROP COLUMN device")
        conn.execute("ALTER TABLE dead_letters DROP COLUMN size")


def test_processes_opening_a_store_older_than_the_dead_letter_bounds_together_all_bound_it(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(OLD, path)
    _before_bounds(path)
    assert _open_together(path) == [0, 0, 0]
    with sqlite3.connect(path) as conn:
        letters = conn.execute("SELECT device, count(*), sum(size) FROM dead_letters GROUP BY device").fetchall()
        assert letters and all(device and size > 0 for device, _, size in letters)
        # counted once, though three processes found the store without its tally
        assert conn.execute("SELECT device, letters, bytes FROM dead_letter_tally ORDER BY device").fetchall() \
            == sorted(letters)
