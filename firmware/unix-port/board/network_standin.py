# `network` on a virtual board: a station that joins the bench's access point (its SSID
# in board.json) while the world's "wifi" is up, after a join delay of virtual time.
# Losing the Wi-Fi cuts the board's TCP connections too: the host closes them in the
# relay between board and broker (simulator/boards.py). Installed as sys.modules["network"].

import world as _world

STA_IF, AP_IF = 0, 1
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 201, 202
JOIN_MS = 2000


def _w():
    return _world.world


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False
        self._joined_at = None  # world ms the join completes
        _w().stations.append(self)

    def active(self, flag=None):
        if flag is None:
            return self._active
        self._active = bool(flag)
        return None

    def connect(self, ssid=None, key=None):
        w = _w()
        w.touch()
        w.stats["wifi_joins"] += 1
        if ssid == w.ssid and w.params["wifi"]:
            self._joined_at = w.world_ms() + JOIN_MS
        else:
            self._joined_at = None

    def disconnect(self):
        self._joined_at = None

    def isconnected(self):
        w = _w()
        if self._joined_at is None:
            return False
        if not w.params["wifi"]:
            self._joined_at = None  # the AP is gone: join again when it is back
            return False
        return w.world_ms() >= self._joined_at

    def status(self, param=None):
        if param == "rssi":
            return _w().params["rssi"]
        if self.isconnected():
            return STAT_GOT_IP
        return STAT_CONNECTING if self._joined_at is not None else STAT_NO_AP_FOUND

    def ifconfig(self, config=None):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, *args, **kwargs):
        if args == ("mac",):
            return b"\x24\x0a\xc4" + _w().folder[-3:].encode()
        return None
