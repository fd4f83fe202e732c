# VL53L0X time-of-flight ranger over I2C (address 0x29), single-shot ranging.
#
# Minimal start-up: standard I2C mode and the "stop variable" handshake from ST's API,
# then single-shot measurements with the sensor's default timing budget (~33 ms). ST's
# SPAD and reference calibration are left out (they need ~2 KB of tuning tables); the
# median of several shots gives a few cm of accuracy, ample for a bin's fill level.

from boucle_fw.drivers.ultrasonic import fill_pct, median_valid

SYSRANGE_START = 0x00
SYSTEM_INTERRUPT_CLEAR = 0x0B
RESULT_INTERRUPT_STATUS = 0x13
RESULT_RANGE = 0x14 + 10
MODEL_ID = 0xC0
OUT_OF_RANGE_MM = 8190  # what the sensor reports with no target


class Vl53l0x:
    """read() -> fill_pct."""

    def __init__(self, sda, scl, address=0x29, samples=5, empty_mm=1000, full_mm=100, i2c=None):
        if i2c is None:
            from machine import I2C, Pin
            i2c = I2C(0, sda=Pin(sda), scl=Pin(scl), freq=400000)
        self.i2c = i2c
        self.address = address
        self.samples = samples
        self.empty_mm = empty_mm
        self.full_mm = full_mm
        if self._r8(MODEL_ID) != 0xEE:
            raise OSError("no VL53L0X at I2C address 0x%02x — check SDA/SCL wiring" % address)
        self._w8(0x88, 0x00)  # I2C standard mode
        self._w8(0x80, 0x01)
        self._w8(0xFF, 0x01)
        self._w8(0x00, 0x00)
        self.stop = self._r8(0x91)
        self._w8(0x00, 0x01)
        self._w8(0xFF, 0x00)
        self._w8(0x80, 0x00)

    def _w8(self, reg, v):
        self.i2c.writeto_mem(self.address, reg, bytes((v,)))

    def _r8(self, reg):
        return self.i2c.readfrom_mem(self.address, reg, 1)[0]

    def _wait(self, test, what):
        import time
        t0 = time.ticks_ms()
        while not test():
            if time.ticks_diff(time.ticks_ms(), t0) > 500:
                raise OSError("VL53L0X timeout waiting for " + what)
            time.sleep_ms(2)

    def shot_mm(self):
        """One single-shot range in mm, or -1 with no target in range."""
        for reg, v in ((0x80, 0x01), (0xFF, 0x01), (0x00, 0x00), (0x91, self.stop),
                       (0x00, 0x01), (0xFF, 0x00), (0x80, 0x00), (SYSRANGE_START, 0x01)):
            self._w8(reg, v)
        self._wait(lambda: not self._r8(SYSRANGE_START) & 0x01, "start")
        self._wait(lambda: self._r8(RESULT_INTERRUPT_STATUS) & 0x07, "range")
        b = self.i2c.readfrom_mem(self.address, RESULT_RANGE, 2)
        self._w8(SYSTEM_INTERRUPT_CLEAR, 0x01)
        mm = (b[0] << 8) | b[1]
        return -1 if mm >= OUT_OF_RANGE_MM else mm

    def read(self):
        d = median_valid([self.shot_mm() for _ in range(self.samples)])
        if d is None:
            return {}
        return {"fill_pct": fill_pct(d, self.empty_mm, self.full_mm)}
