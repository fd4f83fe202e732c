"""The board on the bench: one interface over esptool (ROM bootloader) and mpremote (REPL).

`Board` is what the flash flow uses; `SerialBoard` is the real one, talking to an ESP32
on a serial port through esptool's and mpremote's Python APIs. The tests use a fake
board with the same methods (tests/workshop/fake_board.py); nothing else is faked.
Errors a person can act on (port missing or busy, permission, download mode) come out
as BoardError with the fix in the message.
"""

from __future__ import annotations

import grp
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import serial
from esp_pylib.logger import EspLog
from esptool.cmds import attach_flash, detect_chip, erase_flash, reset_chip, run_stub, write_flash
from esptool.logger import TemplateLogger, log
from esptool.reset import HardReset
from esptool.util import FatalError
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from boucle.cli import UserError

ProgressFn = Callable[[int, int], None]  # (done, total)


def _no_progress(done: int, total: int) -> None:
    pass


class BoardError(UserError):
    """Something about the board or its port that the person at the bench can fix."""


@dataclass(frozen=True)
class ChipInfo:
    chip: str  # esptool's CHIP_NAME, e.g. "ESP32-S3"
    mac: str   # base MAC, "aa:bb:cc:dd:ee:ff"


class Board(Protocol):
    """What the flash flow needs from a board; implemented by SerialBoard and test fakes."""

    port: str

    def detect(self) -> ChipInfo:
        """Connect to the ROM bootloader, identify the chip, read its base MAC."""

    def erase_flash(self, progress: ProgressFn = _no_progress) -> None:
        """Erase the whole flash (old app, old filesystem, old credentials)."""

    def write_flash(self, offset: int, data: bytes, progress: ProgressFn = _no_progress) -> None:
        """Write an image at an offset, verified by the loader."""

    def reset(self) -> None:
        """Hard reset into the application (MicroPython, then our app once installed)."""

    def file_sha256(self, path: str) -> str | None:
        """Hex SHA-256 of a file on the device filesystem, None when absent."""

    def make_dirs(self, path: str) -> None:
        """Create a directory and its parents on the device (no error if present)."""

    def write_file(self, path: str, data: bytes, progress: ProgressFn = _no_progress) -> None:
        """Write a file on the device filesystem."""

    def wifi_status(self) -> str | None:
        """Station state as MicroPython reports it (e.g. 'STAT_GOT_IP', 'STAT_NO_AP_FOUND')."""

    def close(self) -> None:
        """Release the serial port."""


# --- errors ----------------------------------------------------------------------------


def port_group_hint(port: str) -> str:
    """Which group to join to use a serial port, from the device's owner group."""
    try:
        group = grp.getgrgid(os.stat(port).st_gid).gr_name
    except (OSError, KeyError):
        group = ""
    if group and group != "root":
        named = f"the group that owns {port} is {group!r}"
        join = group
    else:
        named = "serial ports belong to 'dialout' on Debian/Ubuntu and to 'uucp' on Arch"
        join = "dialout"
    return (f"{named}: run `sudo usermod -aG {join} $USER` (uucp on Arch), "
            "then log out and back in")


def check_port(port: str) -> None:
    """Fail early, with the fix, when a local serial port is missing or not accessible."""
    if "://" in port or port.startswith(("rfc2217:", "socket:")):
        return
    if not os.path.exists(port):
        raise BoardError(f"port missing: {port} does not exist; plug the board in with a data USB cable "
                         "(not a charge-only one) and look for it with `ls /dev/ttyUSB* /dev/ttyACM*`")
    if not os.access(port, os.R_OK | os.W_OK):
        raise BoardError(f"permission denied on {port}: {port_group_hint(port)}")


_DOWNLOAD_MODE_FIX = ("put it in download mode: hold BOOT (IO0), press and release EN/RST, release BOOT, "
                      "then run the command again (check the USB cable too)")


def explain_esptool_error(port: str, message: str) -> BoardError:
    """Turn an esptool/pyserial failure message into the error a person can act on."""
    text = message.replace("\n", " ")
    if re.search(r"Permission denied|Errno 13", text):
        return BoardError(f"permission denied on {port}: {port_group_hint(port)}")
    if re.search(r"exclusively lock|Errno 11|Errno 16|Resource temporarily unavailable|"
                 r"Device or resource busy|Access is denied", text):
        return BoardError(f"port busy: another program has {port} open (serial monitor, mpremote, "
                          "screen, ModemManager, another boucle); close it and run the command again")
    if re.search(r"Errno 2\b|No such file|FileNotFoundError|doesn't exist|could not open port", text, re.IGNORECASE):
        return BoardError(f"port missing: {port} does not exist or went away; check the cable and "
                          "`ls /dev/ttyUSB* /dev/ttyACM*`")
    if "Wrong boot mode" in text:
        return BoardError(f"board not in download mode on {port} (it is running its app); {_DOWNLOAD_MODE_FIX}")
    if re.search(r"Failed to connect|No serial data received|Timed out waiting for packet|"
                 r"Invalid head of packet|getting no sync reply", text):
        return BoardError(f"board not in download mode on {port} (the ROM bootloader did not answer); "
                          + _DOWNLOAD_MODE_FIX)
    if re.search(r"Unexpected chip|autodetect chip|Wrong chip|This chip is", text):
        return BoardError(f"wrong chip on {port}: {text.strip()[:200]}")
    first = text.strip().split(". ")[0][:200]
    return BoardError(f"esptool failed on {port}: {first}")


def list_ports() -> list[str]:
    """Serial ports present now (USB-serial bridges and native USB ESP32s included)."""
    from serial.tools.list_ports import comports

    return sorted(p.device for p in comports())


# --- the real board -----------------------------------------------------------------


class SerialBoard:
    """An ESP32 on a serial port: esptool for the bootloader, mpremote for the filesystem."""

    def __init__(self, port: str, baud: int = 460800, connect_attempts: int = 3):
        self.port = port
        self.baud = baud
        self.connect_attempts = connect_attempts
        self._esp: Any = None
        self._repl: Any = None
        self._attached = False
        self.native_usb = False  # S3/C3/C6 on their own USB port re-enumerate at reset

    # ROM bootloader side (esptool) --------------------------------------------------

    def detect(self) -> ChipInfo:
        check_port(self.port)
        with self._esptool():
            esp = detect_chip(self.port, connect_attempts=self.connect_attempts)
            self._esp = run_stub(esp)
            mac = self._esp.read_mac("BASE_MAC")
            self.native_usb = bool(getattr(self._esp, "uses_usb_jtag_serial", lambda: False)())
            if self.baud != self._esp.ESP_ROM_BAUD:
                self._esp.change_baud(self.baud)
            return ChipInfo(chip=self._esp.CHIP_NAME, mac=":".join(f"{b:02x}" for b in mac))

    def _loader(self) -> Any:
        if self._esp is None:
            self.detect()
        return self._esp

    def erase_flash(self, progress: ProgressFn = _no_progress) -> None:
        esp = self._loader()
        with self._esptool(progress):
            self._attach(esp)
            progress(0, 1)
            erase_flash(esp)
            progress(1, 1)

    def write_flash(self, offset: int, data: bytes, progress: ProgressFn = _no_progress) -> None:
        esp = self._loader()
        with self._esptool(progress):
            self._attach(esp)
            write_flash(esp, [(offset, data)])

    def _attach(self, esp: Any) -> None:
        if not self._attached:
            attach_flash(esp)
            self._attached = True

    def reset(self) -> None:
        self._close_repl()
        if self._esp is not None:
            with self._esptool():
                reset_chip(self._esp, "hard-reset")
                self._esp._port.close()
            self._esp = None
            self._attached = False
            return
        # No loader session open: pulse EN through RTS with esptool's own sequence.
        try:
            with serial.serial_for_url(self.port, exclusive=True) as port:
                HardReset(port, uses_usb=self.native_usb)()
        except (serial.SerialException, OSError) as exc:
            raise explain_esptool_error(self.port, str(exc)) from None

    @contextmanager
    def _esptool(self, progress: ProgressFn = _no_progress) -> Iterator[None]:
        """Run esptool calls quietly, with its progress routed to ours and its errors mapped."""
        # esptool's logger is a process-wide singleton (esp_pylib's EspLog.instance); the
        # custom one has no set_logger, so the previous one is put back directly.
        previous = EspLog.instance
        log.set_logger(_EsptoolProgress(progress))
        try:
            yield
        except (FatalError, serial.SerialException, OSError) as exc:
            raise explain_esptool_error(self.port, str(exc)) from None
        finally:
            EspLog.instance = previous

    # MicroPython side (mpremote) ----------------------------------------------------

    def _transport(self) -> Any:
        """A raw-REPL session; waits for MicroPython's first boot (it formats the filesystem)."""
        if self._repl is not None:
            return self._repl
        if self._esp is not None:  # the loader holds the port until the chip is reset
            self.reset()
        # After a reset a native-USB chip leaves the bus and comes back: retry the port too.
        last: Exception | None = None
        for _ in range(15):
            try:
                transport = SerialTransport(self.port, baudrate=115200)
            except TransportError as exc:
                last = exc
                time.sleep(1)
                continue
            try:
                transport.enter_raw_repl(soft_reset=False)
                self._repl = transport
                return transport
            except TransportError as exc:
                last = exc
                transport.close()
                time.sleep(1)
        check_port(self.port)
        raise BoardError(f"MicroPython does not answer on {self.port} ({last}); if another program holds the "
                         "port, close it; else the image may not have been written: press EN/RST and run "
                         "the command again")

    def _close_repl(self) -> None:
        if self._repl is not None:
            try:
                self._repl.exit_raw_repl()
            finally:
                self._repl.close()
                self._repl = None

    def file_sha256(self, path: str) -> str | None:
        transport = self._transport()
        if not transport.fs_exists(path):
            return None
        return transport.fs_hashfile(path, "sha256").hex()

    def make_dirs(self, path: str) -> None:
        transport = self._transport()
        current = ""
        for part in Path(path).parts:
            current = part if part == "/" else f"{current.rstrip('/')}/{part}"
            if current != "/" and not transport.fs_isdir(current):
                transport.fs_mkdir(current)

    def write_file(self, path: str, data: bytes, progress: ProgressFn = _no_progress) -> None:
        self._transport().fs_writefile(path, data, progress_callback=progress)

    def wifi_status(self) -> str | None:
        code = ("import network\nw=network.WLAN(network.STA_IF)\ns=w.status()\n"
                "n=[k for k in dir(network) if k.startswith('STAT_') and getattr(network,k)==s]\n"
                "print(n[0] if n else s)")
        try:
            out = self._transport().exec(code)
        except (TransportError, BoardError):
            return None
        return out.decode(errors="replace").strip() or None

    def close(self) -> None:
        self._close_repl()
        if self._esp is not None:
            self._esp._port.close()
            self._esp = None


class _EsptoolProgress(TemplateLogger):
    """esptool's documented custom-logger hook: keep quiet, forward progress bars to ours."""

    def __init__(self, progress: ProgressFn):
        self._progress = progress

    def print(self, *args: Any, **kwargs: Any) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        pass

    def stage(self, finish: bool = False) -> None:
        pass

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                     bar_length: int = 30) -> None:
        self._progress(cur_iter, total_iters)

    def set_verbosity(self, verbosity: str) -> None:
        pass
