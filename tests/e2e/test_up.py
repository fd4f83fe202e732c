"""`boucle up` as a user runs it: indicators for every territory shortly after start,
a clean stop on Ctrl-C, and one-line errors for a busy port."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from boucle.registry import load_registry
from tests.conftest import EXAMPLE_REGISTRY, require_binary
from tests.servers import free_port


def start_up(tmp_path, *extra):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "boucle", "up", "--port", str(port), "--mqtt-port", "0",
         "--data-dir", str(tmp_path / "data"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines, key = [], None
    deadline = time.monotonic() + 60
    while key is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.match(r"API key:\s+(\S+)", line)
        key = found.group(1) if found else None
    assert key, "".join(lines)
    return proc, f"http://127.0.0.1:{port}", key, lines


def stop(proc) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_up_serves_indicators_for_every_territory(tmp_path, broker):
    if broker == "mosquitto":
        require_binary("mosquitto", "mosquitto")
    proc, url, key, lines = start_up(tmp_path, "--broker", broker)
    try:
        assert any(f"API docs:  {url}/docs" in line for line in lines)
        registry = load_registry(EXAMPLE_REGISTRY)
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
            assert client.get("/v1/territories", headers={"X-API-Key": "wrong"}).status_code == 401
            listed = {t["id"] for t in client.get("/v1/territories").json()}
            assert listed == {t.id for t in registry.territories}
            pending = set(listed)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for territory in sorted(pending):
                    values = {v["id"]: v for v in client.get(f"/v1/territories/{territory}/indicators").json()["indicators"]}
                    if all(values[i]["value"] for i in ("energy.consumed", "waste.generated", "water.consumed")):
                        assert values["energy.consumed"]["coverage"] > 0 and values["water.consumed"]["coverage"] > 0
                        assert values["water.night_flow"]["unit"] == "L/h"
                        pending.discard(territory)
                time.sleep(1)
            assert not pending, f"no energy, waste and water yet for {pending}"
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "stopped." in out and "Traceback" not in out


def test_busy_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "boucle", "up", "--port", str(port)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_registry_is_one_line(tmp_path):
    bad = tmp_path / "registry.toml"
    bad.write_text(EXAMPLE_REGISTRY.read_text().replace('kind = "bakery"', 'kind = "boulangerie"', 1))
    result = subprocess.run([sys.executable, "-m", "boucle", "up", "--registry", str(bad),
                             "--port", str(free_port()), "--mqtt-port", "0"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sites[1].kind" in result.stderr and "Fix:" in result.stderr
