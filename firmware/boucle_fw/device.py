# The device loop: sample, account, buffer, publish, answer commands, report health.
#
# Hardware comes in as objects (sensors, link, clock, stores), so the same loop runs on
# the ESP32 and on CPython against a real broker. Runs unchanged on both interpreters.

from boucle_fw import kinds, protocol, signing
from boucle_fw import sensors as sensor_types
from boucle_fw.accounting import EnergyCounter
from boucle_fw.commands import CommandError, CommandHandler, interval_arg
from boucle_fw.scheduler import Scheduler

MAX_BATCHES_PER_CYCLE = 10
# Readings looked at per batch: an energy reading encodes to ~110 bytes, so 48 make a
# payload of ~5.5 KiB (the protocol allows 8). Each is a dict in RAM while it is encoded:
# on the unix-port MicroPython with an ESP32's heap, 100 of them and their 7 KiB payload
# failed to allocate after a long outage, at every boot. 480 readings a minute still go
# out when the link is back.
PEEK = 48
_KEEP = []
for _name, _dec in protocol.FIELDS:
    _KEEP.append(_name)


def next_batch(buffer, device_id, boot, peek=PEEK, signer=None):
    """The next telemetry payload a buffer can send: its oldest readings of one boot, as
    many of the next `peek` as fit one payload, stopping at a reading that waits for the
    clock, signed when a `signer` is given. Returns (payload, count) without dropping
    anything, or None."""
    head = buffer.peek(peek)
    if not head:
        return None
    boot = head[0].get("boot", boot)
    same = []
    for r in head:
        if r.get("boot", boot) != boot or r.get("ts") is None:
            break
        same.append(r)
    if not same:
        return None
    for payload, count in protocol.batches(device_id, boot, same, signer=signer):
        return payload, count
    return None


class Device:
    """One device. `link` publishes (publish(topic, payload, qos, retain) -> bool once the
    broker acknowledged) and delivers commands to on_command(payload) -> ack bytes."""

    def __init__(self, cfg, boot, timebase, link, buffer, sensors, counter=None,
                 counter_store=None, settings=None, info=None, fw="0"):
        self.cfg = cfg
        self.device_id = cfg["device_id"]
        # the workshop's key (docs/protocol.md, "Signatures"): its padded blocks made once
        self.signer = signing.from_hex(cfg.get("sign_key"))
        self.prefix = cfg.get("prefix", protocol.DEFAULT_PREFIX)
        self.boot = boot
        self.tb = timebase
        self.link = link
        self.buffer = buffer
        self.sensors = sensors  # [(type, driver)]
        # the device's kind (one per device, config.validate) says what it counts
        self.kind = kinds.get(sensor_types.kind_of(sensors[0][0])) if sensors else None
        spec = self.kind.COUNTER if self.kind is not None else None
        self.counter_field = spec[0] if spec else None
        self.counter = counter
        if counter is None and spec:
            self.counter = EnergyCounter(0)
        self.counter_store = counter_store
        self.settings = settings
        self.info = info  # callable -> {"heap_free", "rssi", "reset_cause"}
        self.fw = fw
        self.seq = 0
        self.cycles = 0
        self.sensor_errors = 0
        self.last_error = None
        self.reboot_requested = False
        self.ota_request = None
        self._last_sample_ms = None
        self.topic_telemetry = protocol.topic(self.prefix, self.device_id, "telemetry")
        self.topic_health = protocol.topic(self.prefix, self.device_id, "health")
        self.commands = CommandHandler(self._handlers())
        interval = cfg.get("interval_s", 60)
        if settings is not None and settings.get("interval_s"):
            interval = settings.get("interval_s")
        self.interval_s = interval
        self.scheduler = Scheduler()
        self.scheduler.every("sample", interval * 1000, 0)
        # A bin reads its sensor between reports and reports an emptying at once (kinds/waste.py)
        self._emptied = getattr(self.kind, "emptied", None) if self.kind is not None else None
        self._last = None  # (last reading taken, whether it was pushed)
        if self._emptied is not None:
            self.scheduler.every("watch", self.kind.WATCH_S * 1000, 0)

    # --- one cycle --------------------------------------------------------------------

    def sample(self):
        """Read every sensor into one reading and push it; None when no sensor answered."""
        reading = self._read()
        if reading is not None:
            self._take(reading, True)
        return reading

    def watch(self):
        """A bin between reports: read the sensors and push nothing, unless the reading shows
        an emptying since the previous one; then push both (the previous one, the top of
        the bin before the collection, unless it was pushed already). True if it pushed."""
        reading = self._read()
        return reading is not None and self._take(reading, False)

    def _take(self, reading, report):
        last = self._last
        emptying = (self._emptied is not None and last is not None
                    and self._emptied(last[0], reading))
        if emptying and not last[1]:
            self._push(last[0])
        if report or emptying:
            self._push(reading)
        self._last = (reading, report or emptying)
        return emptying

    def _push(self, reading):
        reading["seq"] = self.seq  # only readings that exist take a number: no gaps
        self.seq += 1
        self.buffer.push(reading)

    def _read(self):
        now = self.tb.now_ms()
        dt = 0 if self._last_sample_ms is None else now - self._last_sample_ms
        self._last_sample_ms = now
        reading = {"boot": self.boot}
        self.tb.stamp(reading, now)
        got = False
        for kind, driver in self.sensors:
            try:
                fields = driver.read()
            except Exception as e:  # a sensor unplugged must not stop the others
                self.sensor_errors += 1
                self.last_error = "%s: %s" % (kind, e)
                continue
            self._account(fields, dt)
            for k in fields:
                if k in _KEEP:
                    reading[k] = fields[k]
            got = got or bool(fields)
        field = self.counter_field
        if self.counter is not None and field is not None and got:
            reading[field] = self.counter.total_wh
            if self.counter_store is not None:
                self.counter_store.cycle(self.counter, now // 1000)
        return reading if got else None

    def _account(self, fields, dt_ms):
        if self.counter is not None:
            self.kind.account(self.counter, fields, dt_ms)

    def on_clock_synced(self):
        """After the first NTP answer: stamp the readings taken before it, drop those of
        earlier boots that can no longer be placed in time."""
        boot = self.boot
        tb = self.tb
        self._last = None  # a sample held back unstamped is not worth placing
        self.buffer.restamp(lambda r: tb.restamp(r, boot))
        self.buffer.discard(lambda r: r.get("ts") is not None)

    def flush(self, max_batches=MAX_BATCHES_PER_CYCLE):
        """Publish buffered readings oldest first, one batch at a time, dropping each batch
        only once the broker acknowledged it. Returns the number of batches sent."""
        sent = 0
        peek = PEEK
        while sent < max_batches and self.buffer.depth:
            try:
                batch = next_batch(self.buffer, self.device_id, self.boot, peek, self.signer)
            except MemoryError:
                if peek == 1:
                    return sent  # not even one reading: the next cycle tries again
                peek //= 2  # a smaller payload from a fragmented heap
                continue
            if batch is None:
                return sent  # the oldest reading waits for the clock
            payload, count = batch
            if not self.link.publish(self.topic_telemetry, payload, 1, False):
                return sent
            self.buffer.drop(count)
            sent += 1
        return sent

    def cycle(self):
        """Sample, then publish what the buffer holds. Returns (sampled, delivered)."""
        reading = self.sample()
        self.cycles += 1
        delivered = False
        if self.link.connect():
            self.flush()
            delivered = self.buffer.depth == 0
        if self.buffer.depth:
            self.buffer.sync()  # offline: pending readings go to flash
        if self.cycles % self.cfg.get("health_every", 10) == 0 or self.cycles == 1:
            self.publish_health()
        return reading is not None, delivered

    def publish_health(self):
        if not self.link.connected:
            return False
        i = self.info() if self.info is not None else {}
        extra = {"sensor_errors": self.sensor_errors}
        if self.counter_store is not None:
            extra["nvs_writes"] = self.counter_store.nvs_writes
        payload = protocol.encode_health(
            self.boot, self.tb.now_ms() // 1000, i.get("heap_free", 0), i.get("rssi"),
            self.buffer.depth, self.buffer.dropped, i.get("reset_cause", "unknown"), self.fw,
            self.tb.unix(), extra, self.last_error)
        sent = self.link.publish(self.topic_health, payload, 0, False)
        if sent:
            self.last_error = None  # reported once
        return sent

    # --- commands -----------------------------------------------------------------------

    def on_command(self, payload):
        return self.commands.handle(payload)

    def _sensor_with(self, method, args):
        index = args.get("sensor")
        for i, (kind, driver) in enumerate(self.sensors):
            if (index is None or index == i) and hasattr(driver, method):
                return driver
        able = [t for t in sensor_types.TYPES if _has_step(t, method)]
        raise CommandError("no sensor here can %s — it applies to %s sensors" % (method, ", ".join(able)))

    def _handlers(self):
        def tare(args):
            return self._sensor_with("tare", args).tare(args)

        def calibrate(args):
            return self._sensor_with("calibrate", args).calibrate(args)

        def set_interval(args):
            s = interval_arg(args)
            self.interval_s = s
            self.scheduler.reschedule("sample", s * 1000, self.tb.now_ms())
            if self.settings is not None:
                self.settings.set("interval_s", s)
            return {"interval_s": s}

        def reboot(args):
            self.reboot_requested = True
            return {"rebooting": True}

        def ota(args):
            if not isinstance(args.get("url"), str) or not args["url"].startswith("http://"):
                raise CommandError("url must be the http:// address of a bundle folder holding manifest.json")
            self.ota_request = args
            return {"accepted": True}

        return {"tare": tare, "calibrate": calibrate, "set_interval": set_interval,
                "reboot": reboot, "ota": ota}

    # --- shutdown ----------------------------------------------------------------------

    def shutdown(self):
        """Orderly stop (reboot command, OTA, Wi-Fi given up): energy counted up to now
        and saved exactly to NVS, readings to flash."""
        if self.counter is not None and self.counter_store is not None:
            self._count_energy_since_sample()
            self.counter_store.shutdown(self.counter, self.tb.now_ms() // 1000)
        self.buffer.sync()

    def _count_energy_since_sample(self):
        # The pulses (or power) since the last reading would be lost with the reset: a
        # pulse counter restarts from zero. Counted now, they are in the next boot's first
        # reading, from the saved total.
        now = self.tb.now_ms()
        dt = 0 if self._last_sample_ms is None else now - self._last_sample_ms
        self._last_sample_ms = now
        for kind, driver in self.sensors:
            try:
                self._account(driver.read(), dt)
            except Exception as e:  # a sensor that stopped answering: nothing to count
                self.last_error = "%s: %s" % (kind, e)


def _has_step(sensor_type, command):
    """Whether a sensor type's calibration uses this command (tare, calibrate)."""
    cal = sensor_types.get(sensor_type).CALIBRATION
    if not cal:
        return False
    for step in cal["steps"]:
        if step[1] == command:
            return True
    return False
