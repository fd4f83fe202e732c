"""The whole device start-up (boucle_fw.app.run) on a fake ESP32, with the real
umqtt.simple over real sockets to a real Mosquitto."""

from __future__ import annotations

import json
import time

import pytest
from boucle_fw import app, config

from tests.firmware import umqtt_cpython
from tests.firmware.board import Board, BoardReset, DeepSleep
from tests.firmware.test_device_mosquitto import Subscriber

DEVICE = "ecully-fablab-grid"


@pytest.fixture
def board(monkeypatch):
    umqtt_cpython.load()
    return Board().install(monkeypatch)


def _root(tmp_path, port, profile, **over):
    root = tmp_path / "flash"
    root.mkdir()
    cfg = config.make_config(DEVICE, "atelier", "pw", "127.0.0.1", port, DEVICE, "secret", None,
                             profile, **over)
    (root / "config.json").write_text(json.dumps(cfg))
    return str(root) + "/"


def _readings(sub):
    return [(b["boot"], r) for b in sub.on("telemetry") for r in b["readings"]]


def test_mains_device_loop_then_reboot_command(board, mosquitto, tmp_path):
    root = _root(tmp_path, mosquitto.port, "energy-ct", interval_s=1, health_every=3,
                 ha_discovery=True)
    sub = Subscriber(mosquitto.port)
    sub.wait(lambda: sub.c.is_connected(), "subscriber")
    try:
        board.stop_after_sleeps = 12
        with pytest.raises(KeyboardInterrupt):
            app.run(root)
        sub.wait(lambda: len(_readings(sub)) >= 10, "ten readings")
        got = _readings(sub)
        assert [r["seq"] for _, r in got] == list(range(len(got)))
        assert {boot for boot, _ in got} == {0}
        assert all(abs(r["ts"] - time.time()) < 120 for _, r in got)
        # 5 A at 230 V through the fake clamp
        assert all(abs(r["current_a"] - 5.0) < 0.1 for _, r in got)
        energies = [r["energy_wh"] for _, r in got]
        assert energies == sorted(energies)
        assert board.wdt_feeds >= 10 and board.wdt_timeout >= 120000
        birth = next(s for s in sub.on("status") if s.get("online"))
        assert birth == {"v": 1, "online": True, "boot": 0, "fw": app.FW_VERSION,
                         "reset_cause": "power_on"}
        health = sub.on("health")
        assert health and health[-1]["rssi"] == -61 and health[-1]["buffer_depth"] == 0
        ha = sub.topic(f"homeassistant/sensor/{DEVICE}_energy_wh/config")
        assert ha and ha[0]["state_topic"] == f"boucle/v1/{DEVICE}/telemetry"

        # Second start: the session waits with a reboot command in it.
        sub.c.publish(f"boucle/v1/{DEVICE}/cmd", json.dumps({"id": "r1", "cmd": "reboot"}), qos=1)
        board.sleeps = 0
        board.stop_after_sleeps = 50
        board.cause = Board.SOFT_RESET
        with pytest.raises(BoardReset):
            app.run(root)
        sub.wait(lambda: sub.on("cmd/ack"), "reboot ack")
        assert sub.on("cmd/ack")[0]["ok"] is True
        sub.wait(lambda: sub.on("status")[-1] == {"v": 1, "online": False}, "orderly offline")
        later = [r for boot, r in _readings(sub) if boot == 1]
        assert later and later[0]["energy_wh"] >= energies[-1]  # counter kept over the reset
    finally:
        sub.close()


@pytest.fixture
def sub(mosquitto):
    s = Subscriber(mosquitto.port)
    s.wait(lambda: s.c.is_connected(), "subscriber")
    yield s
    s.close()


def test_reset_keeps_the_rtc_clock_readings_stamped_without_ntp(board, mosquitto, sub, tmp_path):
    root = _root(tmp_path, mosquitto.port, "energy-ct", interval_s=1)
    board.stop_after_sleeps = 3
    with pytest.raises(KeyboardInterrupt):
        app.run(root)  # NTP answers: the RTC is set
    board.ntp_up = False
    board.cause = Board.SOFT_RESET  # RTC memory (and the RTC's clock) kept
    board.sleeps, board.stop_after_sleeps = 0, 4
    with pytest.raises(KeyboardInterrupt):
        app.run(root)
    sub.wait(lambda: [r for b, r in _readings(sub) if b == 1], "readings of the second boot")
    assert all(abs(r["ts"] - time.time()) < 120 for b, r in _readings(sub) if b == 1)
    board.power_cut()  # RTC memory lost: no clock until NTP answers
    board.sleeps, board.stop_after_sleeps = 0, 4
    with pytest.raises(KeyboardInterrupt):
        app.run(root)
    time.sleep(0.5)
    assert not [r for b, r in _readings(sub) if b == 2]  # they wait for NTP, on flash


def test_battery_bin_publishes_every_fourth_wake(board, mosquitto, tmp_path):
    root = _root(tmp_path, mosquitto.port, "waste-ultrasonic")
    sub = Subscriber(mosquitto.port)
    sub.wait(lambda: sub.c.is_connected(), "subscriber")
    try:
        for wake in range(8):
            board.distance_mm = 1000 - 100 * wake
            with pytest.raises(DeepSleep) as slept:
                app.run(root)
            assert slept.value.ms == 900000
        sub.wait(lambda: len(_readings(sub)) >= 8, "eight readings")
        got = _readings(sub)
        assert [r["seq"] for _, r in got] == list(range(8))
        assert {boot for boot, _ in got} == {0}  # a wake is not a new boot
        assert [round(r["fill_pct"]) for _, r in got] == [round(100 * w / 9) for w in range(8)]
        assert not any("energy_wh" in r for _, r in got)  # a bin counts no energy...
        assert ("boucle", "energy") not in board.nvs  # ...and writes none to flash
        ts = [r["ts"] for _, r in got]
        assert ts == sorted(ts) and ts[1] - ts[0] >= 899
        # first wake (clock unknown), then every 4th: three connections, no more
        births = [s for s in sub.on("status") if s.get("online")]
        assert len(births) == 3
        sub.wait(lambda: sub.on("status")[-1] == {"v": 1, "online": False}, "last will: asleep")
    finally:
        sub.close()


def test_invalid_config_stops_at_the_repl_with_the_fix(board, tmp_path, capsys):
    root = tmp_path / "flash"
    root.mkdir()
    cfg = config.make_config(DEVICE, "atelier", "pw", "127.0.0.1", 1883, DEVICE, "s", None, "energy-ct")
    cfg["sensors"][0]["pin"] = 25
    (root / "config.json").write_text(json.dumps(cfg))
    assert app.run(str(root) + "/") is None
    out = capsys.readouterr().out
    assert "config.json is not valid" in out
    assert "sensors[0].pin: GPIO25 is not an ADC1 pin — use an ADC1 pin (32-39)" in out
    (root / "config.json").write_text("{not json")
    app.run(str(root) + "/")
    assert "not valid JSON" in capsys.readouterr().out


def test_watchdog_not_fed_while_sensors_fail(board, mosquitto, tmp_path):
    root = _root(tmp_path, mosquitto.port, "energy-ct", interval_s=1, health_every=2)
    sub = Subscriber(mosquitto.port)
    sub.wait(lambda: sub.c.is_connected(), "subscriber")
    try:
        board.adc_broken = True
        board.stop_after_sleeps = 12
        start_ms = board.virtual_us // 1000
        with pytest.raises(KeyboardInterrupt):
            app.run(root)
        # fed while the sensor may still come back (3 intervals), then no more: the
        # watchdog resets a board whose sensor is gone
        fed = [t - start_ms for t in board.wdt_fed_ms]
        assert fed and max(fed) < 3000 < board.virtual_us // 1000 - start_ms - 5000
        sub.wait(lambda: sub.on("health"), "health")
        assert sub.on("health")[-1]["sensor_errors"] >= 2
        assert _readings(sub) == []
    finally:
        sub.close()


def test_ota_command_installs_the_bundle_and_reboots(board, mosquitto, tmp_path):
    import functools
    import http.server
    import threading

    from boucle_fw import ota

    from firmware.tools import bundle

    www = tmp_path / "www"
    bundle.build(www / "b", "0.2.0")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/b/"
    root = _root(tmp_path, mosquitto.port, "energy-ct", interval_s=1)
    sub = Subscriber(mosquitto.port)
    sub.wait(lambda: sub.c.is_connected(), "subscriber")
    try:
        board.stop_after_sleeps = 3
        with pytest.raises(KeyboardInterrupt):
            app.run(root)  # first start: the persistent session now exists
        sub.c.publish(f"boucle/v1/{DEVICE}/cmd",
                      json.dumps({"id": "u1", "cmd": "ota", "args": {"url": url}}), qos=1)
        board.sleeps, board.stop_after_sleeps = 0, 50
        with pytest.raises(BoardReset):
            app.run(root)
        sub.wait(lambda: sub.on("cmd/ack"), "ota ack")
        assert sub.on("cmd/ack")[0]["result"] == {"accepted": True}
        apps = root + "apps"
        assert ota.read_pointer(apps) == {"version": "0.2.0", "previous": None, "boots": 0,
                                          "good": False}
        assert ota.select_app(3, apps) == apps + "/0.2.0"  # what boot.py does next
    finally:
        sub.close()
        server.shutdown()
