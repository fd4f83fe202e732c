# Remote commands on {prefix}/{device}/cmd, answered on {prefix}/{device}/cmd/ack.
#
# Request: {"id": "<unique>", "cmd": "tare"|"calibrate"|"set_interval"|"reboot"|"ota",
#           "args": {...}}
# Ack:     {"v": 1, "id": ..., "cmd": ..., "ok": true, "result": {...}}
#       or {"v": 1, "id": ..., "cmd": ..., "ok": false, "error": "what happened — what to do"}
#
# Commands arrive at QoS 1, so a repeat (same id) is answered again without running twice.
# Runs unchanged on CPython and MicroPython.

import json

from boucle_fw.protocol import VERSION

COMMANDS = ("tare", "calibrate", "set_interval", "reboot", "ota")
_REMEMBER = 8


class CommandError(Exception):
    """A command that cannot run; its message goes into the ack."""


def encode_ack(cmd_id, cmd, ok, result=None, error=None):
    body = {"v": VERSION, "id": cmd_id, "cmd": cmd, "ok": ok}
    if ok:
        body["result"] = result if result is not None else {}
    else:
        body["error"] = error
    return json.dumps(body).encode()


class CommandHandler:
    """Parses a command payload, runs its handler, returns the ack payload (bytes).

    `handlers` maps a command name to a function(args dict) -> result dict, raising
    CommandError (or ValueError) for a refused command.
    """

    def __init__(self, handlers):
        self.handlers = handlers
        self._done = []  # [(id, ack bytes)], most recent last

    def handle(self, payload):
        try:
            msg = json.loads(payload)
        except ValueError:
            return encode_ack(None, None, False, error="not JSON — send {\"id\": ..., \"cmd\": ..., \"args\": {...}}")
        if not isinstance(msg, dict):
            return encode_ack(None, None, False, error="not a JSON object — send {\"id\": ..., \"cmd\": ...}")
        cmd_id = msg.get("id")
        cmd = msg.get("cmd")
        for done_id, ack in self._done:
            if cmd_id is not None and done_id == cmd_id:
                return ack
        if cmd not in COMMANDS:
            ack = encode_ack(cmd_id, cmd, False,
                             error="unknown command %r — use one of %s" % (cmd, ", ".join(COMMANDS)))
        elif cmd not in self.handlers:
            ack = encode_ack(cmd_id, cmd, False, error="%s is not available on this device" % cmd)
        else:
            args = msg.get("args") or {}
            if not isinstance(args, dict):
                ack = encode_ack(cmd_id, cmd, False, error="args must be an object")
            else:
                try:
                    ack = encode_ack(cmd_id, cmd, True, result=self.handlers[cmd](args))
                except (CommandError, ValueError, TypeError, KeyError) as e:
                    ack = encode_ack(cmd_id, cmd, False, error=_message(e))
        if cmd_id is not None:
            self._done.append((cmd_id, ack))
            if len(self._done) > _REMEMBER:
                self._done.pop(0)
        return ack


def _message(e):
    if isinstance(e, KeyError):
        return "missing argument %s" % e.args[0]
    return str(e) if e.args else e.__class__.__name__


def interval_arg(args, lo=1, hi=86400):
    """The `seconds` argument of set_interval, checked."""
    s = args.get("seconds")
    if not isinstance(s, int) or isinstance(s, bool) or not lo <= s <= hi:
        raise CommandError("seconds must be an int from %d to %d, got %r" % (lo, hi, s))
    return s
