"""OTA on the unix-port MicroPython: the `ota` command, bundles (firmware/tools/bundle.py,
SHA-256 manifest) served by a local HTTP server and fetched by the firmware's own HTTP
client over a real socket, installed by boot.py's pointer; a tampered bundle refused, a
bundle that fails at start rolled back after ota.max_boots boots."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading

import pytest

from firmware.tools import bundle
from simulator.boards import run_through_resets
from tests.firmware.virtual import MINUTE, PV, device_config, new_board


def _build(www, version, broken=False):
    """A bundle of the firmware as it is, announcing `version`; `broken`: its app raises at start."""
    src = www.parent / f"src-{version}"
    shutil.copytree(bundle.APP, src / "boucle_fw")
    app = src / "boucle_fw" / "app.py"
    text = app.read_text().replace('FW_VERSION = "0.1.0"', f'FW_VERSION = "{version}"')
    if broken:
        text = text.replace('    """Start the device from the files under root: config.json, buffer/, apps/."""',
                            '    """Start the device..."""\n    raise RuntimeError("this build is broken")')
    app.write_text(text)
    return bundle.build(www / version, version, src / "boucle_fw")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def bundles(tmp_path):
    www = tmp_path / "www"
    _build(www, "0.2.0")
    _build(www, "0.3.0", broken=True)
    _build(www, "0.2.1")
    (www / "0.2.1" / "boucle_fw" / "device.mpy").write_bytes(b"M\x06 tampered in transit")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _pointer(board):
    return json.loads((board.flash / "apps" / "current.json").read_text())


def test_ota_install_refusal_and_rollback(unix_micropython, broker, observer, boards, bundles, tmp_path):
    board = new_board(unix_micropython, tmp_path / "pv", device_config(PV, broker, "energy-pulse"),
                      params={"power_w": 3000.0})
    boards.append(board)
    board.start()
    board.run(board.world_ms + 2 * MINUTE)
    observer.wait(lambda: observer.on(PV, "status"), "birth")
    assert observer.on(PV, "status")[0]["fw"] == "0.1.0"

    # a file changed on the server: its SHA-256 does not match the manifest
    observer.command(PV, "u0", "ota", url=f"{bundles}/0.2.1/")
    reports = run_through_resets(board, board.world_ms + 12 * MINUTE)
    assert reports == [reports[-1]] and "at" in reports[-1]  # no reset: nothing installed
    observer.wait(lambda: any("error" in h for h in observer.on(PV, "health")), "the failure in health")
    error = next(h["error"] for h in observer.on(PV, "health") if "error" in h)
    assert error.startswith("ota: boucle_fw/device.mpy: SHA-256 ") and "does not match the manifest" in error
    assert not (board.flash / "apps" / "current.json").exists()

    # a good bundle: installed, the board resets into it
    observer.command(PV, "u1", "ota", url=f"{bundles}/0.2.0/")
    reports = run_through_resets(board, board.world_ms + 5 * MINUTE)
    assert [r.get("reset") for r in reports] == ["soft", None]
    observer.wait(lambda: observer.on(PV, "status")[-1].get("fw") == "0.2.0", "the new app's birth")
    assert observer.ack(PV, "u1")["result"] == {"accepted": True}
    assert _pointer(board) == {"version": "0.2.0", "previous": None, "boots": 1, "good": True}
    assert sorted(p.name for p in (board.flash / "apps").iterdir()) == ["0.2.0", "current.json"]

    # a bundle whose app raises at start: main.py resets, boot.py counts, rolls back
    observer.command(PV, "u2", "ota", url=f"{bundles}/0.3.0/")
    reports = run_through_resets(board, board.world_ms + 10 * MINUTE)
    assert [r.get("reset") for r in reports] == ["soft"] * 4 + [None]  # install, then 3 failed boots
    assert board.tail(200).count("RuntimeError: this build is broken") == 3
    assert _pointer(board) == {"version": "0.2.0", "previous": None, "boots": 0, "good": True,
                               "rolled_back_from": "0.3.0"}
    assert not (board.flash / "apps" / "0.3.0").exists()
    # the failed boots raised before counting a boot (app.run had not started): the
    # rolled-back app is boot 2
    observer.wait(lambda: observer.on(PV, "status")[-1].get("boot") == 2, "the rolled-back app's birth")
    births = [s for s in observer.on(PV, "status") if s.get("online")]
    assert [(s["boot"], s["fw"]) for s in births] == [(0, "0.1.0"), (1, "0.2.0"), (2, "0.2.0")]
    observer.wait(lambda: any(b == 2 for b, _ in observer.readings(PV)), "readings of the rolled-back app")
    assert {b for b, _ in observer.readings(PV)} == {0, 1, 2}
