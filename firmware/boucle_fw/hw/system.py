# Board services: reset cause, boot counter and settings in NVS, RTC memory, NTP,
# watchdog, deep sleep.

import json

from boucle_fw.timebase import ntp_to_unix

NVS_NAMESPACE = "boucle"
_CAUSES = (
    ("PWRON_RESET", "power_on"), ("HARD_RESET", "hard"), ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deep_sleep"), ("SOFT_RESET", "soft"),
)


def reset_cause(machine_mod=None):
    """machine.reset_cause() as a word: power_on, hard, watchdog, deep_sleep, soft, brownout..."""
    if machine_mod is None:
        import machine as machine_mod
    code = machine_mod.reset_cause()
    for const, name in _CAUSES:
        if getattr(machine_mod, const, None) == code:
            return name
    return "other_%d" % code


class Nvs:
    """Blobs and ints in the ESP32's NVS (flash, wear-levelled by ESP-IDF)."""

    def __init__(self, esp32_mod=None, namespace=NVS_NAMESPACE):
        if esp32_mod is None:
            import esp32 as esp32_mod
        self.nvs = esp32_mod.NVS(namespace)

    def get_blob(self, key, size=512):
        buf = bytearray(size)
        try:
            n = self.nvs.get_blob(key, buf)
        except OSError:  # ESP_ERR_NVS_NOT_FOUND
            return None
        return bytes(buf[:n])

    def set_blob(self, key, data):
        self.nvs.set_blob(key, data)
        self.nvs.commit()

    def get_int(self, key, default=0):
        try:
            return self.nvs.get_i32(key)
        except OSError:
            return default

    def set_int(self, key, value):
        self.nvs.set_i32(key, value)
        self.nvs.commit()

    def cell(self, key):
        return _NvsCell(self, key)


class _NvsCell:
    def __init__(self, nvs, key):
        self.nvs = nvs
        self.key = key

    def get(self):
        return self.nvs.get_blob(self.key)

    def set(self, data):
        self.nvs.set_blob(self.key, data)


class Settings:
    """Small JSON settings in one NVS blob: tare/scale, interval set by command."""

    def __init__(self, nvs, key="settings"):
        self.nvs = nvs
        self.key = key
        raw = nvs.get_blob(key, 1024)
        try:
            self.data = json.loads(raw) if raw else {}
        except ValueError:
            self.data = {}

    def get(self, name, default=None):
        return self.data.get(name, default)

    def set(self, name, value):
        self.data[name] = value
        self.nvs.set_blob(self.key, json.dumps(self.data).encode())


def next_boot(nvs, woke_from_deep_sleep=False):
    """The boot counter: +1 at every start, kept in NVS. A deep-sleep wake is not a new
    boot (seq goes on from RTC memory) so battery bins do not write flash at each wake."""
    boot = nvs.get_int("boot", -1)
    if woke_from_deep_sleep and boot >= 0:
        return boot
    boot += 1
    nvs.set_int("boot", boot)
    return boot


class RtcMemory:
    """A JSON dict in RTC slow memory (2 KB on the ESP32): survives resets and deep
    sleep, not power loss. A checksum tells real state from power-up garbage."""

    def __init__(self, rtc=None):
        if rtc is None:
            from machine import RTC
            rtc = RTC()
        self.rtc = rtc
        self.data = self._load()

    def _load(self):
        raw = bytes(self.rtc.memory())
        if len(raw) < 5 or raw[0:1] != b"B":
            return {}
        body = raw[5:]
        if int.from_bytes(raw[1:5], "little") != _sum(body):
            return {}
        try:
            return json.loads(body)
        except ValueError:
            return {}

    def save(self):
        body = json.dumps(self.data).encode()
        self.rtc.memory(b"B" + _sum(body).to_bytes(4, "little") + body)

    def cell(self, key):
        return _RtcCell(self, key)


def _sum(data):
    s = 0
    for b in data:
        s = (s * 31 + b) & 0x3FFFFFFF
    return s


class _RtcCell:
    def __init__(self, mem, key):
        self.mem = mem
        self.key = key

    def get(self):
        from binascii import a2b_base64
        v = self.mem.data.get(self.key)
        return a2b_base64(v) if v else None

    def set(self, data):
        from binascii import b2a_base64
        self.mem.data[self.key] = b2a_base64(data).decode().strip()
        self.mem.save()


def ntp_unix(host="pool.ntp.org", time_mod=None):
    """Set the RTC from NTP; Unix seconds now, or None when NTP did not answer."""
    if time_mod is None:
        import time as time_mod
    try:
        import ntptime
        ntptime.host = host
        ntptime.timeout = 3
        ntptime.settime()
    except Exception:
        return None
    return ntp_to_unix(time_mod.time(), time_mod.gmtime(0)[0])
