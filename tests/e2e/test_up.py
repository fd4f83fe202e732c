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


def start_up(tmp_path, *extra, **popen):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "boucle", "up", "--port", str(port), "--mqtt-port", "0",
         "--data-dir", str(tmp_path / "data"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen,
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
    try:
        out, _ = proc.communicate(timeout=120)  # generous: a loaded machine drains the gateway slowly
    except subprocess.TimeoutExpired:
        proc.kill()  # not left running after the test (with its broker and API)
        proc.communicate()
        raise
    return out


def test_ctrl_c_stops_it_even_started_with_sigint_ignored(tmp_path):
    """Started in the background (`nohup`, `cmd &` in a script), a process inherits SIGINT
    ignored; `boucle up` still stops on it, as it says."""
    proc, _, _, _ = start_up(tmp_path, "--broker", "embedded", "--no-simulator",
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert "stopped." in stop(proc)


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_up_fills_the_period_before_it_prints_the_urls(tmp_path, broker):
    """The backfill is stored and rolled up before the URLs: the first view of the filled
    period has coverage >= 95 % in every territory, energy, waste and water in each, and
    no low-coverage caveat. (A 2-day fill keeps the test short; the default is 60 days,
    test_default_backfill_covers_two_default_periods.)"""
    if broker == "mosquitto":
        require_binary("mosquitto", "mosquitto")
    proc, url, key, lines = start_up(tmp_path, "--broker", broker, "--backfill", "2d")
    try:
        assert any(f"API docs:  {url}/docs" in line for line in lines)
        progress = [line for line in lines if line.startswith("backfill ")]
        assert progress and "100.0%" in progress[-1] and "readings stored" in progress[-1], "".join(lines)
        registry = load_registry(EXAMPLE_REGISTRY)
        first_view = {"from": str(int(time.time()) - 2 * 86400 + 900)}  # the filled part of the 2 days
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
            assert client.get("/v1/territories", headers={"X-API-Key": "wrong"}).status_code == 401
            listed = {t["id"] for t in client.get("/v1/territories").json()}
            assert listed == {t.id for t in registry.territories}
            for territory in sorted(listed):
                got = client.get(f"/v1/territories/{territory}/indicators", params=first_view).json()
                values = {v["id"]: v for v in got["indicators"]}
                assert values["data.coverage"]["value"] >= 95, (territory, values["data.coverage"])
                for indicator in ("energy.consumed", "waste.generated", "water.consumed"):
                    assert values[indicator]["value"], (territory, indicator, values[indicator])
                    assert values[indicator]["coverage"] >= 0.95  # a share here, a percentage above
                    assert not any("coverage" in c for c in values[indicator]["caveats"]), values[indicator]
                assert values["water.night_flow"]["unit"] == "L/h"
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "stopped." in out and "Traceback" not in out


def test_default_backfill_covers_two_default_periods():
    """`boucle up` fills the dashboard's default period and the one before it (comparisons)."""
    import argparse

    from boucle import up
    from cloud.params import DEFAULT_DAYS
    from simulator.run import parse_time

    parser = argparse.ArgumentParser()
    up.configure(parser)
    backfill = parser.parse_args([]).backfill
    assert int(time.time()) - parse_time(f"-{backfill}") >= 2 * DEFAULT_DAYS * 86400


def test_expected_readings_and_progress_line():
    from boucle import up
    from boucle.registry import RegistryFile

    registry = RegistryFile(EXAMPLE_REGISTRY)
    devices = registry.current().devices
    day = up.expected_readings(registry, 0, 86400)
    assert day == sum(86400 // d.interval_s for d in devices)
    assert up.expected_readings(registry, 10, 5) == 0
    half = up.backfill_line(500, 1000, 10.0, final=False)
    assert "[###############...............]  50.0%" in half and "500/1,000" in half and "50/s, 10 s left" in half
    assert up.backfill_line(1000, 1000, 20.0, final=False).endswith("in 20 s, rolling up")
    assert up.backfill_line(1000, 1000, 20.0).endswith("in 20 s")


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
