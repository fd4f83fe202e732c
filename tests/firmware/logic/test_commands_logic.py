# Command handler and acks: CPython and MicroPython.
import json

from boucle_fw.commands import CommandError, CommandHandler, interval_arg


def _handler(log):
    def tare(args):
        log.append("tare")
        return {"tare_counts": 8123}

    def set_interval(args):
        return {"interval_s": interval_arg(args)}

    def calibrate(args):
        raise CommandError("no sensor here can calibrate")

    return CommandHandler({"tare": tare, "set_interval": set_interval, "calibrate": calibrate})


def test_ack_carries_result():
    log = []
    ack = json.loads(_handler(log).handle(b'{"id":"c1","cmd":"tare","args":{}}'))
    assert ack == {"v": 1, "id": "c1", "cmd": "tare", "ok": True, "result": {"tare_counts": 8123}}


def test_repeat_is_answered_without_running_twice():
    log = []
    h = _handler(log)
    a = h.handle(b'{"id":"c2","cmd":"tare"}')
    b = h.handle(b'{"id":"c2","cmd":"tare"}')
    assert a == b and log == ["tare"]


def test_refusals_say_why():
    h = _handler([])
    bad = json.loads(h.handle(b'{"id":"c3","cmd":"set_interval","args":{"seconds":0}}'))
    assert bad["ok"] is False and "from 1 to 86400" in bad["error"]
    unknown = json.loads(h.handle(b'{"id":"c4","cmd":"selfdestruct"}'))
    assert unknown["ok"] is False and "tare" in unknown["error"]
    absent = json.loads(h.handle(b'{"id":"c5","cmd":"reboot"}'))
    assert absent["ok"] is False and "not available" in absent["error"]
    refused = json.loads(h.handle(b'{"id":"c6","cmd":"calibrate"}'))
    assert refused["error"] == "no sensor here can calibrate"
    junk = json.loads(h.handle(b"not json"))
    assert junk["ok"] is False and junk["id"] is None
