# What the virtual board's sensors see, wired as the bench's "sensors" list says (the
# same entries as config.json's): an S0 meter on a pin, a CT clamp on an ADC pin, PZEM
# meters on a UART, an HX711 on two pins, an HC-SR04's echo, a water meter's contact. Each
# follows the world's parameters (power_w, weight_g, distance_mm, flow_lph) and is
# stepped with the clock (world.py).
#
# A sensor is an object with elapse(ms), next_event_ms() (ms to its next event, 0 when
# due, None when none), fire() and changed() (the world's parameters moved).

import math


def crc16(data):
    """Modbus CRC-16 (poly 0xA001 reflected), as the PZEM computes it."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class Sensor:
    clocked = False  # True: stepped with the clock (world.peripherals)

    def __init__(self, world, spec):
        self.world = world
        self.spec = spec

    def elapse(self, n):
        pass

    def next_event_ms(self):
        return None

    def fire(self):
        pass

    def changed(self):
        pass


class S0Meter(Sensor):
    """A DIN-rail meter's S0 output: one falling edge per 1/ppk kWh of the world's power.
    Each edge reaches the pin's IRQ handler and the PCNT units bound to the pin. Edges
    fall on whole ms; `lag` keeps the schedule exact on average (no drift in the rate)."""

    clocked = True

    def __init__(self, world, spec):
        Sensor.__init__(self, world, spec)
        self.pin = spec["pin"]
        self.ppk = spec["pulses_per_kwh"]
        self.period = None  # ms between edges at the present power
        self.left = None    # ms to the next edge
        self.lag = 0.0
        self.counters = []
        self.changed()

    def period_ms(self):
        """ms between edges at the world's present power, None when it is off."""
        power = max(0.0, float(self.world.params["power_w"]))
        return 3.6e9 / (power * self.ppk) if power > 0 else None

    def changed(self):
        old, self.period = self.period, self.period_ms()
        if self.period is None:
            self.left = None
        elif old is None or self.left is None:
            self.left, self.lag = self._schedule(self.period)
        else:  # the same share of the interval is left at the new rate
            self.left, self.lag = self._schedule(self.period * self.left / old)

    def _schedule(self, ms):
        whole = int(ms)
        if whole < ms:
            whole += 1
        return max(1, whole), whole - ms

    def elapse(self, n):
        if self.left is not None:
            self.left -= n

    def next_event_ms(self):
        return self.left

    def fire(self):
        self.left, self.lag = self._schedule(self.period - self.lag)
        self.world.stats["pulses"] += 1
        for c in self.counters:
            c.edge()
        handler = self.world.pin_irqs.get(self.pin)
        if handler is not None:
            handler[0](handler[1])


class WaterContact(S0Meter):
    """A water meter's dry contact: one falling edge per litres_per_pulse of the world's
    flow (flow_lph, L/h). Clean edges (the firmware's debounce has nothing to reject)."""

    def __init__(self, world, spec):
        spec = dict(spec)
        spec["pulses_per_kwh"] = 1  # unused: the period comes from the flow
        self.lpp = spec["litres_per_pulse"]
        S0Meter.__init__(self, world, spec)

    def period_ms(self):
        flow = max(0.0, float(self.world.params["flow_lph"]))
        return 3.6e6 * self.lpp / flow if flow > 0 else None


class CtClamp(Sensor):
    """A CT clamp's burden voltage on the ADC: mains sine of the world's current, around
    the mid-supply bias, in the counts the config's calibration expects."""

    def __init__(self, world, spec):
        Sensor.__init__(self, world, spec)
        (c1, a1), (c2, a2) = spec["calibration"]
        self.counts_per_amp = (c2 - c1) / (a2 - a1)
        self.offset = c1 - a1 * self.counts_per_amp
        self.period_us = int(1000000 // spec.get("mains_hz", 50))

    def adc_u16(self):
        p = self.world.params
        amps = max(0.0, float(p["power_w"])) / (self.spec["voltage_v"] * self.spec.get("power_factor", 1.0))
        rms = self.offset + amps * self.counts_per_amp
        angle = 2 * math.pi * (self.world.us % self.period_us) / self.period_us
        v = 2048 + rms * 1.41421356 * math.sin(angle)
        return min(4095, max(0, int(v))) << 4


class Pzem(Sensor):
    """PZEM-004T v3 meters on a UART: each address answers Modbus reads with its share of
    the world's power and its own energy register (integer Wh, counted here)."""

    clocked = True

    def __init__(self, world, spec):
        Sensor.__init__(self, world, spec)
        self.addresses = spec.get("addresses", [1])
        self.wh = {}
        self.frac = {}
        for a in self.addresses:
            self.wh[a] = 0
            self.frac[a] = 0.0
        self.out = b""

    def elapse(self, n):
        share = max(0.0, float(self.world.params["power_w"])) / len(self.addresses) * n / 3.6e6
        for a in self.addresses:
            f = self.frac[a] + share
            whole = int(f)
            self.wh[a] += whole
            self.frac[a] = f - whole

    def request(self, req):
        if len(req) < 4 or crc16(req[:-2]) != req[-2] | (req[-1] << 8):
            return
        addr, fn = req[0], req[1]
        if addr not in self.wh:
            return  # no meter there: the driver times out
        if fn == 0x42:
            self.wh[addr] = 0
            body = bytes((addr, 0x42))
        elif fn == 0x04:
            if addr == self.addresses[0]:
                self.world.reads.append(sum(self.wh.values()))
            p = max(0.0, float(self.world.params["power_w"])) / len(self.addresses)
            volts = 230.0
            amps = p / volts
            regs = (int(volts * 10), int(amps * 1000) & 0xFFFF, int(amps * 1000) >> 16,
                    int(p * 10) & 0xFFFF, int(p * 10) >> 16, self.wh[addr] & 0xFFFF,
                    self.wh[addr] >> 16, 500, 100 if p > 0 else 0, 0)
            body = bytearray((addr, 0x04, 20))
            for r in regs:
                body.append(r >> 8)
                body.append(r & 0xFF)
            body = bytes(body)
        else:
            return
        c = crc16(body)
        self.out = body + bytes((c & 0xFF, c >> 8))


class Hx711(Sensor):
    """An HX711 holding the load cell's counts: DOUT low when a conversion is ready, each
    SCK rising edge shifts the next bit out (MSB first), the 25th starts the next one."""

    def __init__(self, world, spec):
        Sensor.__init__(self, world, spec)
        bench = world.bench.get("hx711", {})
        self.zero = bench.get("zero_counts", 8000)
        self.per_g = bench.get("counts_per_g", spec.get("scale", 420.0))
        self.noise = bench.get("noise_counts", 0)
        self.seed = 12345
        self.clocks = 0
        self.latched = 0

    def counts(self):
        self.seed = (self.seed * 1103515245 + 12345) & 0x7FFFFFFF
        jitter = (self.seed % (2 * self.noise + 1)) - self.noise if self.noise else 0
        return int(self.zero + float(self.world.params["weight_g"]) * self.per_g) + jitter

    def sck(self, v, was):
        if v and not was:
            self.clocks += 1
            if self.clocks == 1:
                self.latched = self.counts() & 0xFFFFFF
            elif self.clocks == 25:
                self.clocks = 0

    def dout(self):
        if 1 <= self.clocks <= 24:
            return (self.latched >> (24 - self.clocks)) & 1
        return 0  # ready


class Ranger(Sensor):
    """An HC-SR04: the echo of the world's distance, there and back at the config's temperature."""

    def echo_us(self):
        speed = (331.3 + 0.606 * self.spec.get("temp_c", 15.0)) / 1000  # mm/us
        return int(2 * float(self.world.params["distance_mm"]) / speed)


KINDS = {"pulse": S0Meter, "ct": CtClamp, "pzem": Pzem, "hx711": Hx711, "hcsr04": Ranger,
         "water_pulse": WaterContact}


def wire(world, specs):
    """The sensors of the bench, attached to the world's clock."""
    out = []
    for spec in specs:
        kind = KINDS.get(spec.get("type"))
        if kind is not None:
            s = kind(world, spec)
            out.append(s)
            if s.clocked:
                world.peripherals.append(s)
    return out
