# Starts a virtual board: the stand-ins for the ESP32's machine, network, esp32,
# ntptime and time (over the bench, world.py), the board's flash at "/", then boot.py
# and main.py from it, as the ESP32 does at power-on. umqtt.simple, socket, ssl and the
# file system are the interpreter's own.
#
#   MICROPYPATH=.frozen:<this folder>:<umqtt.simple folder> micropython start.py BOARD_FOLDER

import sys

import world

w = world.start(sys.argv[1])

import esp32_standin  # the stand-ins are built on the bench
import machine_standin
import network_standin
import ntptime_standin
import time_standin

sys.modules["time"] = time_standin
sys.modules["machine"] = machine_standin
sys.modules["network"] = network_standin
sys.modules["esp32"] = esp32_standin
sys.modules["ntptime"] = ntptime_standin

# What the ESP32 firmware has built in or frozen, loaded while the host paths are
# still visible: afterwards "/" is the board's flash.
import binascii  # noqa: F401
import hashlib  # noqa: F401
import socket  # noqa: F401
import ssl  # noqa: F401

import flash
import umqtt.simple  # noqa: F401

flash.mount(w.folder + "/flash")
sys.path[:] = ["", ".frozen", "/lib"]

w.report({"boot": {"cause": w.cause, "world_ms": w.world_ms(), "ticks_ms": w.ms}})
w.wait_for_grant()


def _run(path):
    try:
        with open(path) as f:
            code = f.read()
    except OSError:
        return
    exec(code, {"__name__": "__main__"})  # noqa: S102 - what the board does with boot.py


try:
    _run("/boot.py")
    _run("/main.py")
    reason = "main.py returned"
except Exception as e:  # noqa: BLE001 - on the board an uncaught error drops to the REPL
    sys.print_exception(e)
    reason = "%s: %s" % (type(e).__name__, e)
w.report(dict(w.status(), repl=reason))
while True:  # the REPL: time goes on, the watchdog (if started) resets the board
    time_standin.sleep_ms(1000)
