"""Readings in a real SQLite store, and the API built around it.

Two days (2026-03-28 and 29, across the spring DST change in Europe/Paris) of the
example registry's 40 devices, one reading a minute (tests/cloud/readings.py). Keys: an
admin, a territory key for Écully and a site key for the Meyzieu Fablab.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import uvicorn
from fastapi.testclient import TestClient

from boucle.registry import ApiKey, RegistryFile, hash_key
from boucle.settings import ApiSettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from cloud.app import create_app
from cloud.serve import ServerThread
from tests.cloud.devtools import DevToolsTab
from tests.cloud.readings import write_readings
from tests.conftest import EXAMPLE_REGISTRY
from tests.servers import free_port

START = 1774656000  # 2026-03-28 00:00 UTC
END = START + 2 * 86400
PERIOD = {"from": "2026-03-28T01:00:00Z", "to": "2026-03-30T00:00:00Z"}
ADMIN, ECULLY, ZIM_FABLAB = "bk_admin-test-key", "bk_ecully-test-key", "bk_zim-fablab-test-key"
KEYS = [
    ApiKey(id="admin", sha256=hash_key(ADMIN), admin=True),
    ApiKey(id="ecully-officer", sha256=hash_key(ECULLY), territories=("ecully",)),
    ApiKey(id="zim-fablab", sha256=hash_key(ZIM_FABLAB), sites=("zim-fablab",)),
]


def simulate(store: SQLiteStore, start: int, end: int) -> int:
    """The example registry's devices over [start, end), one reading a minute (tests.cloud.readings)."""
    return write_readings(store, RegistryFile(EXAMPLE_REGISTRY).current(), start, end)


@pytest.fixture(scope="session")
def simulated_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cloud") / "boucle.db"
    store = SQLiteStore(path)
    simulate(store, START, END)
    store.close()
    return path


def make_app(db, **settings):
    config = load_settings(ApiSettings, {}, store_url=f"sqlite:///{db}", **settings)
    return create_app(config, registry_file=RegistryFile(EXAMPLE_REGISTRY), extra_keys=KEYS)


@pytest.fixture
def client(simulated_db):
    """A TestClient on the simulated store, rate limit out of the way."""
    with TestClient(make_app(simulated_db, rate_limit_per_s=1000.0, rate_limit_burst=10_000)) as c:
        yield c


@dataclass
class Served:
    url: str
    server: uvicorn.Server


@pytest.fixture
def served(simulated_db):
    """A real uvicorn serving the app on a free port."""
    running = []

    def serve(**settings) -> Served:
        port = free_port()
        app = make_app(simulated_db, port=port, **settings)
        running.append(ServerThread(app, "127.0.0.1", port, app.state.context.settings.trusted_proxies).start())
        return Served(running[-1].url, running[-1].server)

    yield serve
    for server in running:
        server.stop()


@pytest.fixture
def tab(tmp_path):
    """A headless Chromium tab driven over DevTools (tests/cloud/devtools.py), closed after."""
    opened = DevToolsTab(tmp_path / "devtools-profile")
    yield opened
    opened.close()
