# `ntptime` on a virtual board: settime() sets the RTC to the world's time, off by the
# world's ntp_offset_s (a server that answers wrong, or a resync that jumps), and fails
# as the real one does (OSError, ETIMEDOUT) without Wi-Fi or NTP.
# Installed as sys.modules["ntptime"].

import world as _world

host = "pool.ntp.org"
timeout = 1


def _w():
    return _world.world


def settime():
    w = _w()
    w.touch()
    if not (w.params["wifi"] and w.params["ntp"] and w.station_up()):
        w.sleep_us(int(timeout * 1000000))
        raise OSError(110)  # ETIMEDOUT
    w.rtc_offset_s = int(w.params["ntp_offset_s"])
    w.stats["ntp_syncs"] += 1


def time():
    return _w().unix()
