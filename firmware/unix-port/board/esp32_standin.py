# `esp32` on a virtual board: NVS (the board folder's nvs.json, durable at commit, each
# commit replacing the file in one rename as ESP-IDF's entries are written atomically)
# and PCNT (a 16-bit counter that returns to zero at its min/max, as the hardware does).
# Installed as sys.modules["esp32"].

import world as _world

ESP_ERR_NVS_NOT_FOUND = -4354
ESP_ERR_NVS_INVALID_LENGTH = -4364


def _w():
    return _world.world


class NVS:
    def __init__(self, namespace):
        self.ns = namespace
        self.pending = {}  # key -> ["i32", n] | ["blob", hex] | None (erased)

    def _get(self, key):
        if key in self.pending:
            return self.pending[key]
        return _w().nvs.get(self.ns, {}).get(key)

    def _set(self, key, entry):
        w = _w()
        w.touch()
        self.pending[key] = entry
        writes = w.stats["nvs_writes"]
        writes[key] = writes.get(key, 0) + 1

    def set_i32(self, key, value):
        self._set(key, ["i32", int(value)])

    def get_i32(self, key):
        e = self._get(key)
        if e is None or e[0] != "i32":
            raise OSError(ESP_ERR_NVS_NOT_FOUND)
        return e[1]

    def set_blob(self, key, value):
        self._set(key, ["blob", bytes(value).hex()])

    def get_blob(self, key, buf):
        e = self._get(key)
        if e is None or e[0] != "blob":
            raise OSError(ESP_ERR_NVS_NOT_FOUND)
        data = bytes.fromhex(e[1])
        if len(data) > len(buf):
            raise OSError(ESP_ERR_NVS_INVALID_LENGTH)
        buf[:len(data)] = data
        return len(data)

    def erase_key(self, key):
        if self._get(key) is None:
            raise OSError(ESP_ERR_NVS_NOT_FOUND)
        self._set(key, None)

    def commit(self):
        w = _w()
        w.touch()
        if not self.pending:
            return
        space = w.nvs.setdefault(self.ns, {})
        for key, entry in self.pending.items():
            if entry is None:
                space.pop(key, None)
            else:
                space[key] = entry
        self.pending = {}
        w.save("nvs.json", w.nvs)
        w.stats["nvs_commits"] += 1


class _Irq:
    def __init__(self):
        self.pending = 0

    def flags(self):
        f, self.pending = self.pending, 0
        return f


class PCNT:
    INCREMENT, DECREMENT, IGNORE = 1, 2, 0
    IRQ_ZERO, IRQ_MIN, IRQ_MAX, IRQ_THRESHOLD0, IRQ_THRESHOLD1 = 1, 2, 4, 8, 16

    def __init__(self, id, **kwargs):
        self.id = id
        self.count = 0
        self.min = 0
        self.max = 0
        self.falling = PCNT.IGNORE
        self.rising = PCNT.IGNORE
        self.running = False
        self.handler = None
        self.trigger = 0
        self._irq = _Irq()
        self.meter = None
        self.owner = None  # the machine.Counter built on this unit
        self.init(**kwargs)

    def init(self, pin=None, falling=None, rising=None, filter=None, min=None, max=None,
             value=None, channel=0):
        if min is not None or max is not None or value == 0:
            self.count = 0
        if min is not None:
            self.min = min
        if max is not None:
            self.max = max
        if falling is not None:
            self.falling = falling
        if rising is not None:
            self.rising = rising
        if pin is not None:
            for s in _w().sensors:
                if s.spec.get("type") == "pulse" and s.pin == pin.id:
                    s.counters.append(self)
                    self.meter = s

    def start(self):
        self.running = True

    def stop(self):
        self.running = False

    def deinit(self):
        self.running = False
        if self.meter is not None and self in self.meter.counters:
            self.meter.counters.remove(self)

    def irq(self, handler=None, trigger=IRQ_ZERO):
        if handler is not None:
            self.handler = handler
            self.trigger = trigger
        return self._irq

    def value(self, value=None):
        if self.owner is None:
            _w().meter_read()
        v = self.count
        if value is not None:
            if value != 0:
                raise ValueError("PCNT.value() can only reset to 0")
            self.count = 0
        return v

    def edge(self):
        """A falling edge on the bound pin (an S0 meter's pulse)."""
        if not self.running or self.falling == PCNT.IGNORE:
            return
        self.count += 1 if self.falling == PCNT.INCREMENT else -1
        event = 0
        if self.max and self.count >= self.max:
            self.count = 0
            event = PCNT.IRQ_MAX | PCNT.IRQ_ZERO
        elif self.min and self.count <= self.min:
            self.count = 0
            event = PCNT.IRQ_MIN | PCNT.IRQ_ZERO
        elif self.count > 32767:  # no limit set: the 16-bit register wraps
            self.count -= 65536
        elif self.count < -32768:
            self.count += 65536
        if event & self.trigger and self.handler is not None:
            self._irq.pending |= event
            self.handler(self)
