"""Several processes open a new embedded store at once (`boucle up` starts the gateway and
the API together on a fresh `.boucle/boucle.db`): none of them fails."""

from __future__ import annotations

import multiprocessing

from boucle.storage.sqlite import SQLiteStore

ROUNDS = 100
OPENERS = 3


def open_each(paths: list[str], start, failures) -> None:
    """Open each new store as soon as every opener is ready for it."""
    for path in paths:
        start.wait()
        try:
            SQLiteStore(path).close()
        except Exception as exc:  # noqa: BLE001 - the test reports whatever failed
            failures.put(f"{path}: {type(exc).__name__}: {exc}")


def test_processes_opening_a_new_store_together_all_succeed(tmp_path):
    # Switching a new file to WAL takes an exclusive lock that SQLite does not wait for:
    # before the retry, a few rounds in a hundred failed an opener with "database is locked".
    ctx = multiprocessing.get_context("spawn")
    paths = [str(tmp_path / f"store-{i}.db") for i in range(ROUNDS)]
    start, failures = ctx.Barrier(OPENERS), ctx.Queue()
    openers = [ctx.Process(target=open_each, args=(paths, start, failures)) for _ in range(OPENERS)]
    for p in openers:
        p.start()
    for p in openers:
        p.join(120)
    assert [p.exitcode for p in openers] == [0] * OPENERS
    found = []
    while not failures.empty():
        found.append(failures.get())
    assert not found, found
