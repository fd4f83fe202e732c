# Wi-Fi station with exponential backoff and a bounded number of failed reconnects.


class Wifi:
    """ensure() -> True when connected. After `reconnects` failed attempts in a row,
    gave_up is True: the caller resets the board (the radio stack can wedge; a reset is
    the only cure the ESP32 offers)."""

    def __init__(self, ssid, password, reconnects=10, network_mod=None, time_mod=None,
                 join_timeout_ms=15000, backoff_ms=(2000, 300000)):
        if network_mod is None:
            import network as network_mod
        if time_mod is None:
            import time as time_mod
        self.time = time_mod
        self.sta = network_mod.WLAN(network_mod.STA_IF)
        self.sta.active(True)
        self.ssid = ssid
        self.password = password
        self.reconnects = reconnects
        self.join_timeout_ms = join_timeout_ms
        self.backoff_min, self.backoff_max = backoff_ms
        self.failures = 0
        self.joins = 0
        self._next_try = None

    @property
    def gave_up(self):
        return self.failures >= self.reconnects

    def rssi(self):
        try:
            return self.sta.status("rssi") if self.sta.isconnected() else None
        except Exception:
            return None

    def ensure(self):
        t = self.time
        if self.sta.isconnected():
            self.failures = 0
            return True
        now = t.ticks_ms()
        if self._next_try is not None and t.ticks_diff(self._next_try, now) > 0:
            return False
        self.joins += 1
        try:
            self.sta.disconnect()
        except OSError:
            pass
        self.sta.connect(self.ssid, self.password)
        start = t.ticks_ms()
        while not self.sta.isconnected():
            if t.ticks_diff(t.ticks_ms(), start) > self.join_timeout_ms:
                break
            t.sleep_ms(100)
        if self.sta.isconnected():
            self.failures = 0
            self._next_try = None
            return True
        self.failures += 1
        delay = min(self.backoff_min << min(self.failures - 1, 16), self.backoff_max)
        self._next_try = t.ticks_add(t.ticks_ms(), delay)
        return False
