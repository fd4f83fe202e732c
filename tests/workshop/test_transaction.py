"""Several files updated together or not at all."""

from __future__ import annotations

import os

import pytest

from workshop import transaction
from workshop.transaction import FileTransaction, TransactionError


def _files(tmp_path):
    a, b, c = tmp_path / "registry.toml", tmp_path / "passwd", tmp_path / "acl"
    a.write_text("registry v1\n")
    b.write_text("passwd v1\n")
    os.chmod(b, 0o640)
    return a, b, c  # c does not exist yet


def test_commit_writes_all_and_keeps_permissions(tmp_path):
    a, b, c = _files(tmp_path)
    txn = FileTransaction()
    for path in (a, b, c):
        txn.stage(path, f"{path.name} v2\n")
    txn.commit()
    assert [p.read_text() for p in (a, b, c)] == ["registry.toml v2\n", "passwd v2\n", "acl v2\n"]
    assert b.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acl", "passwd", "registry.toml"]  # no temp left


def test_a_file_the_transaction_creates_is_its_owners_only(tmp_path):
    old = os.umask(0o022)  # the usual umask: a plain open() would make it 0644
    try:
        txn = FileTransaction()
        txn.stage(tmp_path / "registry.toml", "registry v1\n")
        txn.commit()
    finally:
        os.umask(old)
    assert (tmp_path / "registry.toml").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("fail_on_call", [1, 2, 3])
def test_failed_swap_puts_every_file_back(tmp_path, monkeypatch, fail_on_call):
    a, b, c = _files(tmp_path)
    before = {p: p.read_bytes() if p.exists() else None for p in (a, b, c)}
    calls = {"n": 0}
    real_replace = os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    txn = FileTransaction()
    for path in (a, b, c):
        txn.stage(path, "new\n")
    monkeypatch.setattr(transaction.os, "replace", failing_replace)
    with pytest.raises(TransactionError, match="No space left on device.*nothing was changed"):
        txn.commit()
    monkeypatch.undo()
    assert {p: p.read_bytes() if p.exists() else None for p in (a, b, c)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd", "registry.toml"]


def test_file_edited_after_staging_is_not_overwritten(tmp_path):
    a, b, _ = _files(tmp_path)
    txn = FileTransaction()
    txn.stage(a, "mine\n")
    txn.stage(b, "mine\n")
    b.write_text("someone else's edit\n")
    with pytest.raises(TransactionError, match="changed by someone else"):
        txn.commit()
    assert a.read_text() == "registry v1\n" and b.read_text() == "someone else's edit\n"


def test_rollback_restores_unless_changed_since(tmp_path):
    a, b, c = _files(tmp_path)
    txn = FileTransaction()
    for path in (a, b, c):
        txn.stage(path, "new\n")
    txn.commit()
    a.write_text("edited after our commit\n")
    left = txn.rollback()
    assert left == [a]
    assert a.read_text() == "edited after our commit\n"
    assert b.read_text() == "passwd v1\n" and not c.exists()
