"""A MicroPython board's raw REPL on a pseudo-terminal, for testing SerialBoard without hardware.

It speaks the raw-REPL protocol that mpremote drives (Ctrl-A enters raw mode, the code
ends with Ctrl-D, the board answers "OK", stdout, Ctrl-D, stderr, Ctrl-D, ">"; it
declines raw-paste mode like an older firmware), runs the code with CPython in one
namespace kept between commands, and maps the device filesystem to a folder. Errors
come back the way MicroPython prints them (`OSError: [Errno 2] ENOENT`), which is what
mpremote parses. `network` is a stand-in for the Wi-Fi hardware.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import threading
import traceback
import types
from pathlib import Path

STAT_NAMES = {"STAT_IDLE": 1000, "STAT_CONNECTING": 1001, "STAT_GOT_IP": 1010,
              "STAT_NO_AP_FOUND": 201, "STAT_WRONG_PASSWORD": 202}


class ReplDevice:
    def __init__(self, root: Path, wifi: str = "STAT_GOT_IP"):
        self.root = root
        self.wifi = wifi
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the pty survives the host closing it
        self.executed: list[str] = []
        self._namespace = self._make_namespace()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # device filesystem ------------------------------------------------------------

    def host_path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def _make_namespace(self) -> dict:
        device = self

        class DeviceOS(types.ModuleType):
            def stat(self, path):
                return tuple(os.stat(device.host_path(path)))

            def mkdir(self, path):
                os.mkdir(device.host_path(path))

            def remove(self, path):
                os.remove(device.host_path(path))

            def ilistdir(self, path="/"):
                for entry in os.scandir(device.host_path(path)):
                    yield (entry.name, 0x4000 if entry.is_dir() else 0x8000, 0, entry.stat().st_size)

        network = types.ModuleType("network")
        network.STA_IF = 0
        for name, value in STAT_NAMES.items():
            setattr(network, name, value)

        class WLAN:
            def __init__(self, interface):
                pass

            def status(self):
                return STAT_NAMES[device.wifi]

        network.WLAN = WLAN
        modules = {"os": DeviceOS("os"), "network": network}
        real_import = builtins.__import__

        def device_import(name, *args, **kwargs):
            return modules.get(name) or real_import(name, *args, **kwargs)

        def device_open(path, mode="r", *args, **kwargs):
            return open(device.host_path(path), mode, *args, **kwargs)

        names = dict(vars(builtins))
        names.update(__import__=device_import, open=device_open)
        return {"__builtins__": names}

    # serial side --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._stop:
            return
        try:
            os.write(self.master, data)
        except OSError:
            if not self._stop:
                raise

    def _serve(self) -> None:
        raw = False
        code = bytearray()
        pending = b""
        while not self._stop:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            pending += data
            while pending:
                byte, pending = pending[:1], pending[1:]
                if byte == b"\x01":  # Ctrl-A: raw REPL
                    raw, code = True, bytearray()
                    self._write(b"raw REPL; CTRL-B to exit\r\n>")
                elif byte == b"\x02":  # Ctrl-B: friendly REPL
                    raw = False
                    self._write(b"\r\nMicroPython (test REPL)\r\n>>> ")
                elif byte == b"\x03":  # Ctrl-C: interrupt, drop the line
                    code = bytearray()
                elif not raw:
                    continue
                elif byte == b"\x05":  # raw-paste request "\x05A\x01": declined
                    while len(pending) < 2:
                        pending += os.read(self.master, 4096)
                    pending = pending[2:]
                    self._write(b"R\x00")
                elif byte == b"\x04":  # end of code: run it
                    self._run(bytes(code).decode())
                    code = bytearray()
                else:
                    code += byte

    def _run(self, source: str) -> None:
        self._write(b"OK")
        self.executed.append(source)
        out = io.StringIO()
        err = ""
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(source, "<stdin>", "exec"), self._namespace)  # noqa: S102 - it is a REPL
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            err = f"Traceback (most recent call last):\r\n  File \"<stdin>\"\r\nOSError: [Errno {exc.errno}] {name}\r\n"
        except Exception:  # noqa: BLE001 - any error goes back to the host, as on a board
            err = traceback.format_exc().replace("\n", "\r\n")
        self._write(out.getvalue().replace("\n", "\r\n").encode() + b"\x04" + err.encode() + b"\x04>")

    def close(self) -> None:
        # Stop the serving thread before closing the master fd: a write to a closed fd
        # number can land in whatever file the next test opens under that number.
        self._stop = True
        os.close(self._slave)  # the thread's read now fails (EIO) and it returns
        self._thread.join(5)
        os.close(self.master)
