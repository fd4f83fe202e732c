"""A known stream and its truth, for the gateway's chaos tests (one gateway with Mosquitto,
two with a NATS cluster): telemetry with repeats, out-of-order and late readings, and
invalid messages; then the check that a store holds exactly the truth, once, and every
invalid message as a dead letter with its reason."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from boucle.accounting import counter_deltas
from boucle.protocol import vectors
from tests.conftest import EXAMPLE_REGISTRY, REPO

DEVICES = ["ecully-fablab-grid", "ecully-bakery-grid", "zim-metal-grid"]
T0 = int(time.time()) - 6 * 3600


def make_stream(rng: random.Random):
    """(messages, truth, invalid errors): (topic, payload) to publish in order, the true
    per-device readings, and the sorted reasons of the invalid messages."""
    messages, truth = [], {}
    for device in DEVICES:
        energy, readings = 5000, []
        for boot in (1, 2):  # a reboot halfway: the counter continues, seq restarts
            for seq in range(1, 151):
                energy += rng.randint(0, 40)
                readings.append({"boot": boot, "seq": seq, "ts": T0 + 60 * len(readings), "energy_wh": energy})
        truth[device] = readings
        for i in range(0, len(readings), 5):
            chunk = readings[i:i + 5]
            assert len({r["boot"] for r in chunk}) == 1
            body = {"v": 1, "device": device, "boot": chunk[0]["boot"],
                    "readings": [{k: r[k] for k in ("seq", "ts", "energy_wh")} for r in chunk]}
            messages.append((f"boucle/v1/{device}/telemetry", json.dumps(body).encode()))
    late = [messages.pop(rng.randrange(len(messages))) for _ in range(15)]  # held back, sent at the end
    rng.shuffle(messages)                                                    # out of order
    repeats = [messages[rng.randrange(len(messages))] for _ in range(30)]     # published twice
    # (signature vectors need the vectors' key store: tests/protocol, tests/firmware/test_unix_app.py)
    invalid = [v for v in vectors()["vectors"]
               if not v["valid"] and v["error"] not in ("future_timestamp", "retained", "bad_signature")]
    bad = [(f"boucle/v1/{v.get('topic_device', 'ecully-fablab-grid')}/telemetry",
            v["raw"].encode() if "raw" in v else json.dumps(v["payload"]).encode()) for v in invalid]
    stream = messages + repeats + bad
    rng.shuffle(stream)
    return stream + late, truth, sorted(v["error"] for v in invalid)


def gateway_process(log: Path, **settings: object) -> subprocess.Popen:
    """`boucle gateway` as a subprocess (SIGKILL-able), configured by BOUCLE_* variables
    (`MQTT_PORT=1883` sets BOUCLE_MQTT_PORT), logging JSON lines to `log`; small batches,
    so that a kill lands between commits."""
    env = {**os.environ, "BOUCLE_REGISTRY": str(EXAMPLE_REGISTRY), "BOUCLE_BATCH_SIZE": "20",
           "BOUCLE_LOG_FORMAT": "json", **{f"BOUCLE_{k}": str(v) for k, v in settings.items()}}
    return subprocess.Popen([sys.executable, "-m", "boucle", "gateway"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def wait_until(predicate: Callable[[], bool], timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the store may be down at this moment
            if predicate():
                return True
        time.sleep(0.25)
    return False


def assert_holds_the_truth(store, truth: dict, invalid_errors: list[str], logs: Callable[[], str],
                           timeout: float = 60) -> None:
    """Wait until the store holds as many readings and dead letters as the truth, then check
    that it holds exactly the truth: every reading once, with its value, the same energy
    totals, and every invalid message as a dead letter with its reason."""
    devices = sorted(truth)
    expected = sum(len(r) for r in truth.values())
    assert wait_until(lambda: sum(store.reading_counts(devices, 0, 2**31).values()) == expected
                      and len(store.dead_letters(1000)) == len(invalid_errors), timeout=timeout), (
        store.reading_counts(devices, 0, 2**31), expected, sorted(d.error for d in store.dead_letters(1000)),
        invalid_errors, logs())
    for device, readings in truth.items():
        stored = store.readings(device, 0, 2**31, ["energy_wh"])
        assert [(r.boot, r.seq, r.ts, r.values["energy_wh"]) for r in stored] == \
               [(r["boot"], r["seq"], r["ts"], r["energy_wh"]) for r in readings]
        values = [r.values["energy_wh"] for r in stored]
        assert counter_deltas(values, [r.ts for r in stored], None).total_wh == values[-1] - values[0]
    assert sorted(d.error for d in store.dead_letters(1000)) == invalid_errors
    assert all(d.message for d in store.dead_letters(1000))
