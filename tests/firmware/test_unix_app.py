"""The whole firmware (boot.py, main.py, boucle_fw) on MicroPython's unix port, 32-bit as
the ESP32, with the real umqtt.simple, sockets and file system; stand-ins only for
machine, network, esp32, ntptime and time (firmware/unix-port/board/). Against a real
Mosquitto with per-device passwords and the shipped ACL, and the real gateway."""

from __future__ import annotations

import itertools
import json
import time

from boucle_fw.accounting import EnergyCounter
from boucle_fw.protocol import encode_batch, encode_reading

from boucle.device_keys import generate_key
from boucle.protocol import split_signature
from tests.firmware.virtual import (
    BIN,
    DEVICE,
    LASER,
    MINUTE,
    PREFIX,
    WATER,
    device_config,
    make_certs,
    new_board,
    publish_as,
    start_gateway,
    wait_until,
)

WRAP = 1 << 30  # time.ticks_ms() wraps here on the ESP32 and on this 32-bit build


def _segments(board) -> list[str]:
    folder = board.flash / "buffer"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_broker_outage_of_an_hour_spills_to_flash_and_the_gateway_stores_each_reading_once(
        unix_micropython, broker, observer, boards, tmp_path):
    key = generate_key()  # as boucle flash provisions it: in the device's config and the gateway's key store
    gateway, store = start_gateway(broker, tmp_path, {DEVICE: key})
    # a PZEM meter on UART2, as the registry says; the ticks wrap 30 minutes in
    board = new_board(unix_micropython, tmp_path / "board", device_config(DEVICE, broker, "energy-pzem", sign_key=key),
                      ticks_start=WRAP - 30 * MINUTE, params={"power_w": 2400.0})
    boards.append(board)
    try:
        assert board.start()["boot"]["cause"] == 1  # power-on
        t0 = board.world_ms
        board.run(t0 + 20 * MINUTE)
        observer.wait(lambda: len(observer.readings(DEVICE)) >= 19, "readings before the outage")
        birth = observer.on(DEVICE, "status")[0]
        assert birth == {"v": 1, "online": True, "boot": 0, "fw": "0.1.0", "reset_cause": "power_on"}
        assert _segments(board) == []  # online: flash is not written

        broker.stop()
        board.run(t0 + 80 * MINUTE)  # an hour without the broker: sampling goes on
        spilled = _segments(board)
        assert spilled and all(name.isdigit() for name in spilled)
        on_flash = sum(len(board.flash.joinpath("buffer", n).read_text().splitlines()) - 1 for n in spilled)
        assert on_flash >= 59  # a reading a minute, each cycle written through to flash

        broker.start()
        board.run(t0 + 100 * MINUTE)
        observer.wait(lambda: len({r["seq"] for _, r in observer.readings(DEVICE)}) >= 99, "the replay")
        got = observer.readings(DEVICE)
        seqs = [r["seq"] for _, r in got]
        first_seen = list(dict.fromkeys(seqs))
        assert first_seen == list(range(len(first_seen)))  # oldest first, no gap
        assert {b for b, _ in got} == {0}
        assert _segments(board) == []  # replayed and removed

        # The gateway stored every reading once, with the device's values
        n = len(first_seen)
        deadline = time.monotonic() + 60
        while store.reading_counts([DEVICE], 0, 2**31)[DEVICE] < n and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = store.readings(DEVICE, 0, 2**31, ["energy_wh", "power_w"])
        assert [(r.boot, r.seq) for r in stored] == [(0, s) for s in range(n)]
        published = {r["seq"]: r for _, r in got}
        assert all(r.values["energy_wh"] == published[r.seq]["energy_wh"] for r in stored)
        assert store.dead_letters() == []
        # every batch was signed on the board, and checked by the gateway before it stored it
        raw = [p for t, p, _ in observer.messages if t == f"{PREFIX}/{DEVICE}/telemetry"]
        assert raw and all(split_signature(p) is not None for p in raw)

        # Energy exact against the meter: each reading counts the register's increase
        # since the first one (the PZEM's own integer Wh), across the ticks wrap
        reads = board.reads[0]
        assert len(reads) == n
        assert [published[s]["energy_wh"] for s in range(n)] == [w - reads[0] for w in reads]
        assert published[n - 1]["energy_wh"] > 99 * 39  # 2.4 kW for 99 minutes
        assert board.last["ticks_ms"] < 100 * MINUTE  # the ticks wrapped on the way

        board.kill()  # the power goes: the broker publishes the last will
        observer.wait(lambda: observer.on(DEVICE, "status")[-1] == {"v": 1, "online": False}, "last will")

        # Someone with the device's MQTT password, not its key: a signed batch altered, and
        # an unsigned one, are dead letters, not readings.
        signed = raw[-1]
        unsigned = encode_batch(DEVICE, 0, [encode_reading({"seq": n, "ts": int(time.time()) - 60, "energy_wh": 1})])
        forged = [signed.replace(b'"energy_wh":', b'"energy_wh":1', 1), unsigned]
        publish_as(broker, DEVICE, [(f"{PREFIX}/{DEVICE}/telemetry", p) for p in forged])
        wait_until(lambda: len(store.dead_letters()) == 2, "the forged batches dead-lettered")
        assert {(d.error, d.path) for d in store.dead_letters()} == {("bad_signature", "sig")}
        assert store.reading_counts([DEVICE], 0, 2**31)[DEVICE] == n
    finally:
        gateway.stop()


def _bin_board(interpreter, broker, boards, tmp_path, counts_per_g: int, **overrides):
    """A started waste-scale board, empty, its cell at 8000 counts empty: (board, its start)."""
    board = new_board(interpreter, tmp_path / "bin", device_config(BIN, broker, "waste-scale", **overrides),
                      params={"weight_g": 0.0}, bench={"hx711": {"zero_counts": 8000, "counts_per_g": counts_per_g}})
    boards.append(board)
    board.start()
    return board, board.world_ms


def test_commands_tare_calibrate_set_interval_reboot(unix_micropython, broker, observer, boards, tmp_path):
    # A bin on a load cell: the cell gives 8000 counts empty and 400 counts per gram; the
    # config says 420 (uncalibrated), and there is no tare at boot
    board, t0 = _bin_board(unix_micropython, broker, boards, tmp_path, counts_per_g=400)
    board.run(t0 + 3 * MINUTE)
    observer.wait(lambda: observer.readings(BIN), "a reading")
    assert observer.readings(BIN)[0][1]["weight_g"] == round(8000 / 420)  # then zero tracking

    observer.command(BIN, "t1", "tare")
    board.run(t0 + 4 * MINUTE)
    observer.wait(lambda: observer.ack(BIN, "t1"), "tare ack")
    assert observer.ack(BIN, "t1") == {"v": 1, "id": "t1", "cmd": "tare", "ok": True,
                                        "result": {"tare_counts": 8000}}

    board.set(weight_g=2500.0)
    observer.command(BIN, "c1", "calibrate", known_g=2500)
    board.run(t0 + 5 * MINUTE)
    observer.wait(lambda: observer.ack(BIN, "c1"), "calibrate ack")
    assert observer.ack(BIN, "c1")["result"] == {"scale": 400.0}
    board.set(weight_g=12840.0)
    observer.command(BIN, "i1", "set_interval", seconds=300)
    observer.command(BIN, "bad", "set_interval", seconds=0)
    board.run(t0 + 26 * MINUTE)
    observer.wait(lambda: observer.ack(BIN, "bad"), "refused set_interval")
    assert observer.ack(BIN, "i1")["result"] == {"interval_s": 300}
    assert observer.ack(BIN, "bad")["ok"] is False and "seconds must be an int" in observer.ack(BIN, "bad")["error"]
    later = [r for _, r in observer.readings(BIN) if r["ts"] * 1000 > t0 + 6 * MINUTE]
    assert [r["weight_g"] for r in later] == [12840] * len(later) and len(later) >= 3
    gaps = {b["ts"] - a["ts"] for a, b in itertools.pairwise(later)}
    assert gaps == {300}

    observer.command(BIN, "r1", "reboot")
    report = board.run(t0 + 30 * MINUTE)
    assert report["reset"] == "soft"  # the process ended in machine.reset()
    observer.wait(lambda: observer.ack(BIN, "r1"), "reboot ack")
    observer.wait(lambda: observer.on(BIN, "status")[-1] == {"v": 1, "online": False}, "orderly offline")
    board.world_ms = report["world_ms"] + 1500
    assert board.start()["boot"]["cause"] == 5  # soft reset: RTC memory kept
    board.run(board.world_ms + 11 * MINUTE)
    observer.wait(lambda: any(b == 1 for b, _ in observer.readings(BIN)), "a reading of boot 1")
    observer.wait(lambda: sum(b == 1 for b, _ in observer.readings(BIN)) >= 3, "three readings of boot 1")
    again = [r for b, r in observer.readings(BIN) if b == 1]
    assert [r["weight_g"] for r in again] == [12840] * len(again)  # tare and scale kept in NVS
    # and the interval: the first reading waits for the Wi-Fi join, then the 300 s grid
    assert again[2]["ts"] - again[1]["ts"] == 300
    status = observer.on(BIN, "status")[-1]
    assert status == {"v": 1, "online": True, "boot": 1, "fw": "0.1.0", "reset_cause": "soft"}
    settings = json.loads(bytes.fromhex(board.nvs()["boucle"]["settings"][1]))
    assert settings == {"hx711": [8000, 400.0], "interval_s": 300}
    assert sorted(board.nvs()["boucle"]) == ["boot", "settings"]  # no energy counter in a bin
    assert not any("energy_wh" in r for _, r in observer.readings(BIN))


def test_wrong_password_is_refused_and_nothing_is_published(unix_micropython, broker, observer, boards,
                                                            tmp_path):
    cfg = device_config(DEVICE, broker, "energy-pzem")
    cfg["mqtt"]["password"] = "not-its-password"
    board = new_board(unix_micropython, tmp_path / "board", cfg, params={"power_w": 500.0})
    boards.append(board)
    board.start()
    board.run(board.world_ms + 10 * MINUTE)
    time.sleep(0.5)
    assert observer.on(DEVICE, "status") == [] and observer.readings(DEVICE) == []
    # it kept sampling into its buffer and waits for a broker that lets it in
    on_flash = [p for p in (board.flash / "buffer").iterdir() if p.name.isdigit()]
    assert on_flash
    nvs = board.nvs()["boucle"]
    assert EnergyCounter.from_bytes(bytes.fromhex(nvs["energy"][1])) is not None


def test_tls_with_the_ca_from_the_config_and_refused_with_another(unix_micropython, broker, observer, boards,
                                                                  tmp_path):
    # A CT clamp over MQTT/TLS: mbedtls checks the broker's certificate against mqtt.ca
    # (the CA of deploy/certs/make-certs.sh) and its name, "localhost"
    cfg = device_config(LASER, broker, "energy-ct", tls=True)
    assert cfg["mqtt"]["port"] == broker.tls_port and "BEGIN CERTIFICATE" in cfg["mqtt"]["ca"]
    board = new_board(unix_micropython, tmp_path / "laser", cfg, params={"power_w": 1150.0})
    boards.append(board)
    board.start()
    board.run(board.world_ms + 5 * MINUTE)
    observer.wait(lambda: len(observer.readings(LASER)) >= 5, "readings over TLS")
    assert observer.on(LASER, "status")[0]["online"] is True
    # 1150 W at 230 V through the clamp's calibration: 5 A
    assert all(abs(r["current_a"] - 5.0) < 0.05 for _, r in observer.readings(LASER))
    board.close()
    time.sleep(0.3)
    published = len(observer.readings(LASER))

    # the same board, the same broker, another CA: the handshake fails, nothing goes out
    other = make_certs(tmp_path / "other-ca")
    cfg = device_config(LASER, broker, "energy-ct", tls=True, ca=(other / "ca.crt").read_text())
    board = new_board(unix_micropython, tmp_path / "laser-wrong-ca", cfg, params={"power_w": 1150.0})
    boards.append(board)
    before = len(observer.on(LASER, "status"))
    board.start()
    board.run(board.world_ms + 10 * MINUTE)
    time.sleep(0.5)
    assert len(observer.on(LASER, "status")) == before  # no connection: no birth
    assert len(observer.readings(LASER)) == published
    assert _segments(board)  # its readings wait on flash for a broker it can trust


def test_a_water_meter_counts_litres_from_its_contact_and_keeps_them_across_a_reset(
        unix_micropython, broker, observer, boards, tmp_path):
    # 600 L/h through a 1 L/pulse meter: a pulse every 6 s, 10 L a minute
    board = new_board(unix_micropython, tmp_path / "water", device_config(WATER, broker, "water-pulse"),
                      params={"flow_lph": 600.0})
    boards.append(board)
    board.start()
    t0 = board.world_ms
    board.run(t0 + 12 * MINUTE)
    observer.wait(lambda: len(observer.readings(WATER)) >= 8, "eight readings")
    got = [r for _, r in observer.readings(WATER)]
    steps = {b["water_l"] - a["water_l"] for a, b in itertools.pairwise(got)}
    assert steps <= {9, 10, 11} and "energy_wh" not in got[0]
    assert got[-1]["flow_lpm"] == 10.0
    board.set(flow_lph=0.0)  # taps closed: the flow reads at most a pulse over the time since the last
    board.run(t0 + 16 * MINUTE)
    observer.wait(lambda: observer.readings(WATER)[-1][1]["flow_lpm"] < 0.5, "the flow decaying")
    observer.command(WATER, "r1", "reboot")
    report = board.run(t0 + 18 * MINUTE)
    assert report["reset"] == "soft"
    last = observer.readings(WATER)[-1][1]["water_l"]
    board.world_ms = report["world_ms"] + 1500
    board.start()
    board.run(board.world_ms + 4 * MINUTE)
    observer.wait(lambda: any(b == 1 for b, _ in observer.readings(WATER)), "a reading of boot 1")
    assert next(r["water_l"] for b, r in observer.readings(WATER) if b == 1) == last  # kept exactly
    assert "water" in board.nvs()["boucle"]


def test_a_bin_reports_its_emptying_at_once_with_the_weight_before_it(unix_micropython, broker, observer, boards,
                                                                      tmp_path):
    # A bin reporting every 15 minutes (its cell as its config says, 420 counts per gram, with
    # 8000 counts of zero offset); the cell is read every minute between reports
    # (boucle_fw/kinds/waste.py: WATCH_S)
    board, t0 = _bin_board(unix_micropython, broker, boards, tmp_path, counts_per_g=420, interval_s=900)
    board.run(t0 + 2 * MINUTE)
    observer.wait(lambda: observer.readings(BIN), "the first report")
    board.set(weight_g=8000.0)
    board.run(t0 + 5 * MINUTE)
    board.set(weight_g=12000.0)  # a last deposit, 2 minutes before the collection
    board.run(t0 + 7 * MINUTE)
    board.set(weight_g=0.0)      # collected
    board.run(t0 + 9 * MINUTE)   # the next report is due at 15 minutes
    observer.wait(lambda: len(observer.readings(BIN)) >= 3, "the emptying, before the next report")
    first, before, after = (r for _, r in observer.readings(BIN)[:3])
    # 8000 counts of zero offset (19 g at 420 counts/g), which zero tracking shrinks while empty
    assert before["weight_g"] - after["weight_g"] == 12000 and 0 <= after["weight_g"] <= 20
    assert after["ts"] - before["ts"] == 60 and 5 * 60 <= before["ts"] - first["ts"] < 7 * 60
    assert [r["seq"] for r in (first, before, after)] == [0, 1, 2]
    board.run(t0 + 16 * MINUTE)
    observer.wait(lambda: len(observer.readings(BIN)) == 4, "the report due")
    # on the 15-minute grid of the boot (the first report waited for the Wi-Fi join)
    assert 14 * 60 < observer.readings(BIN)[3][1]["ts"] - first["ts"] <= 15 * 60
