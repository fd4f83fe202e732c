"""The store, the spool and `boucle up`'s data folder are created for their owner only."""

from __future__ import annotations

import os

import pytest

from boucle.private_files import create_private_file, private_folder
from boucle.protocol import Reading
from boucle.storage.sqlite import SQLiteStore
from gateway.spool import Spool


@pytest.fixture
def open_umask():
    """The usual umask, which leaves new files readable by everyone (0644)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_store_and_its_wal_files_are_0600(tmp_path, open_umask):
    db = tmp_path / ".boucle" / "boucle.db"
    store = SQLiteStore(db)
    store.write_readings([Reading(device="d1", boot=1, seq=1, ts=1774656000, values={"energy_wh": 5})], received=1774656001.0)
    files = sorted(db.parent.iterdir())
    assert [f.name for f in files] == ["boucle.db", "boucle.db-shm", "boucle.db-wal"]
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert mode(db.parent) == 0o700
    store.close()


def test_a_new_spool_and_its_state_are_0600(tmp_path, open_umask):
    spool = Spool(tmp_path / "spool" / "spool.db", max_rows=100)
    spool.append([(1774656001.0, "boucle/v1/d1/telemetry", b"{}")])
    files = sorted((tmp_path / "spool").iterdir())
    assert {f.name for f in files} >= {"spool.db", "spool.db-wal", "spool.state.db", "spool.state.db-wal"}
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_existing_files_and_folders_keep_their_mode(tmp_path, open_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    (shared / "boucle.db").touch(mode=0o640)
    assert create_private_file(shared / "boucle.db").exists()
    assert mode(shared) == 0o750 and mode(shared / "boucle.db") == 0o640
    assert mode(private_folder(tmp_path / "a" / "b")) == 0o700
