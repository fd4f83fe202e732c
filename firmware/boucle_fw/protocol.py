# Wire protocol v1 encoder, shared by the device and the simulator.
#
# Runs unchanged on MicroPython: no dataclasses, no typing, no f-strings.
# Floats are written with a fixed number of decimals per field so that the
# ESP32's single-precision floats never leak digits like 230.1000061 and the
# same reading gives the same bytes on CPython and MicroPython.

from binascii import hexlify

from boucle_fw import kinds as _kinds

VERSION = 1
DEFAULT_PREFIX = "boucle/v1"
MAX_PAYLOAD_BYTES = 8192
MAX_READINGS = 200
SIG_FIELD = "sig"
# A signed payload is the unsigned one with ',"sig":"<64 hex>"' before its final '}'.
SIG_BYTES = 74

# (field name, decimals (None: integer field)) in wire order: the device kinds' fields
# (boucle_fw/kinds/), which also give their units and bounds.
FIELDS = tuple((_f[0], _f[1]) for _f in _kinds.fields())

_FORMATS = {}
for _name, _dec in FIELDS:
    _FORMATS[_name] = None if _dec is None else "%." + str(_dec) + "f"


def topic(prefix, device_id, leaf):
    """Topic of one of a device's channels: telemetry, status, health, cmd, cmd/ack."""
    return prefix + "/" + device_id + "/" + leaf


def encode_reading(reading):
    """One reading (a dict with seq, ts and measurement fields) as a JSON object string."""
    parts = ['{"seq":', str(int(reading["seq"])), ',"ts":', str(int(reading["ts"]))]
    for name, _dec in FIELDS:
        value = reading.get(name)
        if value is None:
            continue
        fmt = _FORMATS[name]
        parts.append(',"' + name + '":')
        parts.append(str(int(value)) if fmt is None else _float(fmt, value))
    parts.append("}")
    return "".join(parts)


def _float(fmt, value):
    text = fmt % value
    # "-0.0" and "0.0" are the same reading; keep one spelling.
    if text[0] == "-" and float(text) == 0:
        text = text[1:]
    return text


def _header(device, boot):
    return '{"v":' + str(VERSION) + ',"device":"' + device + '","boot":' + str(int(boot)) + ',"readings":['


def encode_batch(device, boot, readings, signer=None):
    """The telemetry payload (bytes) for one batch of already-encoded reading strings,
    signed when a `signer` (boucle_fw.signing.Signer) is given.

    One join of small bytes, so the payload is allocated once: on the board it is the
    largest object (up to 8 KiB), and each intermediate copy (joined str, concatenations,
    encode()) is another large block a fragmented heap may not have. The signature is
    computed over the same parts, before the join, for the same reason.
    """
    parts = [_header(device, boot).encode()]
    for text in readings:
        if len(parts) > 1:
            parts.append(b",")
        parts.append(text.encode())
    parts.append(b"]}")
    if signer is not None:
        h = signer.start()
        for part in parts:
            h.update(part)
        parts[-1] = b'],"sig":"'
        parts.append(hexlify(signer.finish(h)))
        parts.append(b'"}')
    return b"".join(parts)


def batches(device, boot, readings, limit=MAX_PAYLOAD_BYTES, max_readings=MAX_READINGS, signer=None):
    """Split readings (dicts, oldest first) into payloads each at most `limit` bytes,
    signed when a `signer` is given (the signature counts in the limit).

    Yields (payload_bytes, count) so the caller can drop exactly `count` readings from
    its buffer once the broker acknowledged the payload.
    """
    head = len(_header(device, boot)) + 2 + (SIG_BYTES if signer is not None else 0)  # "]}" and the signature
    chunk = []
    size = head
    for reading in readings:
        text = encode_reading(reading)
        extra = len(text) + (1 if chunk else 0)
        if chunk and (size + extra > limit or len(chunk) >= max_readings):
            yield encode_batch(device, boot, chunk, signer), len(chunk)
            chunk = []
            size = head
            extra = len(text)
        if head + len(text) > limit:
            raise ValueError("reading too large for one payload")
        chunk.append(text)
        size += extra
    if chunk:
        yield encode_batch(device, boot, chunk, signer), len(chunk)


def encode_status(online, boot=None, fw=None, reset_cause=None):
    """Retained status message; the last will is encode_status(False)."""
    parts = ['{"v":', str(VERSION), ',"online":', "true" if online else "false"]
    if boot is not None:
        parts.append(',"boot":' + str(int(boot)))
    if fw is not None:
        parts.append(',"fw":"' + fw + '"')
    if reset_cause is not None:
        parts.append(',"reset_cause":"' + reset_cause + '"')
    parts.append("}")
    return "".join(parts).encode()


def encode_health(boot, uptime_s, heap_free, rssi, buffer_depth, dropped, reset_cause, fw, ts=None,
                  extra=None, error=None):
    """Health report (QoS 0) on {prefix}/{device}/health; `error`: the last problem seen
    (a sensor that stopped answering, a failed OTA), as text."""
    parts = ['{"v":', str(VERSION), ',"boot":', str(int(boot)), ',"uptime_s":', str(int(uptime_s)),
             ',"heap_free":', str(int(heap_free))]
    if rssi is not None:
        parts.append(',"rssi":' + str(int(rssi)))
    parts.append(',"buffer_depth":' + str(int(buffer_depth)) + ',"dropped":' + str(int(dropped)))
    parts.append(',"reset_cause":"' + reset_cause + '","fw":"' + fw + '"')
    if ts is not None:
        parts.append(',"ts":' + str(int(ts)))
    if extra:
        for k in sorted(extra):
            parts.append(',"' + k + '":' + str(int(extra[k])))
    if error:
        import json
        parts.append(',"error":' + json.dumps(str(error)))
    parts.append("}")
    return "".join(parts).encode()
