# PZEM-004T v3 energy meter: Modbus-RTU over UART, 9600 8N1.
#
# Read input registers (function 0x04) 0-9: voltage 0.1 V, current 0.001 A (32 bit),
# power 0.1 W (32 bit), energy 1 Wh (32 bit), frequency 0.1 Hz, power factor 0.01, alarm.
# 32-bit values come low word first. Energy reset is function 0x42. Several meters share
# one bus, each set beforehand to its own address (write register 0x0002 through the
# general address 0xF8 with only that meter on the bus).

import struct

READ_INPUT = 0x04
RESET_ENERGY = 0x42
WRITE_SINGLE = 0x06
GENERAL_ADDRESS = 0xF8
REPLY_LEN = 25  # addr, fn, byte count 20, 20 data bytes, CRC 2


class ModbusError(Exception):
    pass


def crc16(data):
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def frame(body):
    """A Modbus frame: body + CRC, low byte first."""
    c = crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


def read_request(address):
    return frame(bytes((address, READ_INPUT, 0, 0, 0, 10)))


def reset_request(address):
    return frame(bytes((address, RESET_ENERGY)))


def set_address_request(new_address):
    return frame(bytes((GENERAL_ADDRESS, WRITE_SINGLE, 0, 2, 0, new_address)))


def check(reply, address, function, length):
    """Validate a reply frame; raise ModbusError saying what was wrong."""
    if reply is None or len(reply) < 4:
        raise ModbusError("no reply from PZEM at address %d — check wiring (TX/RX crossed, 5 V) and address" % address)
    if crc16(reply[:-2]) != reply[-2] | (reply[-1] << 8):
        raise ModbusError("bad CRC from PZEM at address %d — noise on the bus or two meters with one address" % address)
    if reply[0] != address:
        raise ModbusError("reply from address %d, expected %d" % (reply[0], address))
    if reply[1] == function | 0x80:
        raise ModbusError("PZEM at address %d refused function 0x%02x (code %d)" % (address, function, reply[2]))
    if reply[1] != function or len(reply) != length:
        raise ModbusError("unexpected reply from PZEM at address %d" % address)


def parse_measurement(reply, address):
    """Fields of a 0x04 reply: voltage_v, current_a, power_w, meter_wh, frequency_hz, power_factor."""
    check(reply, address, READ_INPUT, REPLY_LEN)
    r = struct.unpack(">10H", reply[3:23])
    return {
        "voltage_v": r[0] / 10,
        "current_a": (r[1] | (r[2] << 16)) / 1000,
        "power_w": (r[3] | (r[4] << 16)) / 10,
        "meter_wh": r[5] | (r[6] << 16),
        "frequency_hz": r[7] / 10,
        "power_factor": r[8] / 100,
        "alarm": r[9],
    }


def combine(meters):
    """One reading from several meters on the bus (e.g. the three phases of a panel)."""
    power = 0.0
    current = 0.0
    volts = 0.0
    apparent = 0.0
    for m in meters:
        power += m["power_w"]
        current += m["current_a"]
        volts += m["voltage_v"]
        apparent += m["voltage_v"] * m["current_a"]
    out = {
        "power_w": power,
        "current_a": current,
        "voltage_v": volts / len(meters),
    }
    out["power_factor"] = min(1.0, power / apparent) if apparent > 0 else 0.0
    return out


class MeterDeltas:
    """Wh consumed since the last read, summed over meters, each with reset detection."""

    def __init__(self):
        self.last = {}

    def delta(self, address, meter_wh):
        prev = self.last.get(address)
        self.last[address] = meter_wh
        if prev is None:
            return 0
        return meter_wh - prev if meter_wh >= prev else meter_wh


class Pzem:
    """PZEM-004T v3 meters on one UART. read() -> fields plus energy_delta_wh."""

    def __init__(self, uart_id=2, tx=17, rx=16, addresses=(1,), uart=None):
        if uart is None:
            from machine import UART
            uart = UART(uart_id, baudrate=9600, bits=8, parity=None, stop=1, tx=tx, rx=rx,
                        timeout=200, timeout_char=10)
        self.uart = uart
        self.addresses = list(addresses)
        self.deltas = MeterDeltas()

    def _transact(self, request, length):
        while self.uart.any():  # stale bytes from an earlier timeout
            self.uart.read()
        self.uart.write(request)
        return self.uart.read(length)

    def read_one(self, address):
        return parse_measurement(self._transact(read_request(address), REPLY_LEN), address)

    def read(self):
        meters = []
        delta = 0
        for a in self.addresses:
            m = self.read_one(a)
            delta += self.deltas.delta(a, m["meter_wh"])
            meters.append(m)
        out = combine(meters)
        out["energy_delta_wh"] = delta
        return out

    def reset_energy(self, address):
        check(self._transact(reset_request(address), 4), address, RESET_ENERGY, 4)
        self.deltas.last[address] = 0
