"""Shared fixtures: real Mosquitto and InfluxDB servers on free ports.

A server fixture skips its test only when the binary is absent on a developer's
machine; under CI (CI=true) a missing binary is an error, never a skip.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.servers import InfluxDB, Mosquitto, NatsCluster

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_REGISTRY = REPO / "boucle" / "examples" / "registry.toml"


@functools.cache
def minute_registry() -> Path:
    """The example registry with every device reporting once a minute (its own meters report
    every 5 minutes, its bins every 15): for the tests written around one reading a minute."""
    path = Path(tempfile.mkdtemp(prefix="boucle-minute-registry-")) / "registry.toml"
    path.write_text(re.sub(r"^interval_s = \d+$", "interval_s = 60", EXAMPLE_REGISTRY.read_text(), flags=re.MULTILINE))
    return path


def require_binary(name: str, apt_package: str) -> None:
    if shutil.which(name) or os.path.exists(f"/usr/sbin/{name}") or os.path.exists(f"/usr/bin/{name}"):
        return
    message = f"{name} binary not found: apt-get install {apt_package}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must not skip this test)")
    pytest.skip(message)


def running(binary: str, apt_package: str, server):
    """A test server started for a fixture (skipped without its binary outside CI), stopped after."""
    require_binary(binary, apt_package)
    try:
        started = server.start()
    except BaseException:
        server.stop()  # what did start (a cluster's first nodes) does not outlive the test
        raise
    yield started
    started.stop()


@pytest.fixture
def mosquitto(tmp_path):
    yield from running("mosquitto", "mosquitto", Mosquitto(tmp_path / "mosquitto"))


@pytest.fixture
def influxdb(tmp_path):
    yield from running("influxd", "influxdb", InfluxDB(tmp_path / "influxdb"))


@pytest.fixture
def nats_cluster(tmp_path):
    """A 3-node NATS cluster with JetStream and MQTT, each node with its own ports and data."""
    yield from running("nats-server", "nats-server", NatsCluster(tmp_path / "nats"))


@pytest.fixture
def example_registry() -> Path:
    return EXAMPLE_REGISTRY
