"""A store that does not answer: 503 problems (never a 500), and its URL's credentials never logged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from fastapi.testclient import TestClient

from boucle.registry import RegistryFile
from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app
from tests.cloud.conftest import ECULLY, KEYS, PERIOD
from tests.conftest import EXAMPLE_REGISTRY
from tests.servers import free_port

USER, PASSWORD = "alice-influx", "s3cret-pw"


def unreachable_influx() -> str:
    """A storage URL with credentials, on a port where nothing listens."""
    return f"influx+http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/boucle"


def test_healthz_and_indicators_answer_503_while_the_store_is_down(caplog):
    settings = load_settings(ApiSettings, {}, store_url=unreachable_influx())
    with TestClient(create_app(settings, registry_file=RegistryFile(EXAMPLE_REGISTRY), extra_keys=KEYS)) as c:
        health = c.get("/healthz")
        assert health.status_code == 503, health.text
        assert health.headers["content-type"] == "application/problem+json"
        assert health.json()["title"] == "Store unavailable" and int(health.headers["Retry-After"]) > 0
        r = c.get("/v1/territories/ecully/indicators", params=PERIOD, headers={"X-API-Key": ECULLY})
        assert r.status_code == 503 and r.json()["status"] == 503
        assert PASSWORD not in health.text + r.text
        # the registry does not need the store
        assert c.get("/v1/territories", headers={"X-API-Key": ECULLY}).status_code == 200
    assert any("does not answer" in rec.getMessage() for rec in caplog.records)


def test_the_api_log_never_shows_the_store_credentials(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BOUCLE_STORE_URL": unreachable_influx(),
           "BOUCLE_REQUIRE_KEYS": "false", "BOUCLE_LOG_LEVEL": "DEBUG"}
    proc = subprocess.Popen([sys.executable, "-m", "boucle", "api", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=30)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        assert health.status_code == 503
        assert httpx.get(f"{url}/v1/territories/ecully/indicators", params=PERIOD, timeout=30).status_code == 503
    finally:
        proc.send_signal(signal.SIGINT)
        _, log = proc.communicate(timeout=30)
    assert "the store does not answer" in log and "127.0.0.1" in log, log  # the failure is logged...
    assert "***@127.0.0.1" in log, log  # ...with the URL, its credentials redacted
    assert PASSWORD not in log and USER not in log, log
    # a bad URL is refused at start, in one line, redacted too
    bad = subprocess.run([sys.executable, "-m", "boucle", "api", "--store", f"influx+http://{USER}:{PASSWORD}@db:1/"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "names no database" in bad.stderr, bad.stderr
    assert PASSWORD not in bad.stderr and USER not in bad.stderr, bad.stderr
