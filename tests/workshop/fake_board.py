"""A fake ESP32 on the bench: the only fake in the workshop tests (hardware).

It keeps its flash and filesystem in memory. On reset it behaves like a booted
device running the Boucle app: it reads /config.json and, when its simulated Wi-Fi
is up, connects to the broker written there with the credentials written there
(retrying like the firmware's reconnect loop), then publishes its retained birth
message and a first telemetry batch through the firmware's own encoder.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from boucle_fw import protocol, signing

from workshop.board import BoardError, ChipInfo, ProgressFn, _no_progress


@dataclass
class FakeBoard:
    port: str
    chip: str = "ESP32-S3"
    mac: str = "34:85:18:a1:b2:c3"
    wifi: str = "STAT_GOT_IP"          # station state after boot
    fail_at: str | None = None         # method name that raises BoardError
    online: bool = True                # False: the app boots but never reaches MQTT
    flash: dict[int, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"/"})
    writes: list[str] = field(default_factory=list)
    erased: bool = False
    resets: int = 0
    closed: bool = False
    device_log: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _maybe_fail(self, step: str) -> None:
        if self.fail_at == step:
            raise BoardError(f"injected failure at {step} on {self.port}")

    def detect(self) -> ChipInfo:
        self._maybe_fail("detect")
        return ChipInfo(self.chip, self.mac)

    def erase_flash(self, progress: ProgressFn = _no_progress) -> None:
        self._maybe_fail("erase_flash")
        self.flash.clear()
        self.files.clear()
        self.dirs = {"/"}
        self.erased = True
        progress(1, 1)

    def write_flash(self, offset: int, data: bytes, progress: ProgressFn = _no_progress) -> None:
        self._maybe_fail("write_flash")
        for done in range(0, len(data), 4096):
            progress(min(done + 4096, len(data)), len(data))
        self.flash[offset] = bytes(data)

    def file_sha256(self, path: str) -> str | None:
        self._maybe_fail("file_sha256")
        data = self.files.get(path)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def make_dirs(self, path: str) -> None:
        self._maybe_fail("make_dirs")
        parts = path.strip("/").split("/")
        for n in range(1, len(parts) + 1):
            self.dirs.add("/" + "/".join(parts[:n]))

    def write_file(self, path: str, data: bytes, progress: ProgressFn = _no_progress) -> None:
        self._maybe_fail("write_file")
        if path == "/config.json":
            self._maybe_fail("write_config")
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in self.dirs:
            raise OSError(2, "ENOENT", parent)  # as MicroPython's open() would fail
        self.files[path] = bytes(data)
        self.writes.append(path)
        progress(len(data), len(data))

    def wifi_status(self) -> str | None:
        return self.wifi

    def reset(self) -> None:
        self._maybe_fail("reset")
        self.resets += 1
        if "/config.json" in self.files and self.wifi == "STAT_GOT_IP" and self.online:
            thread = threading.Thread(target=self._run_app, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self.closed = True

    @property
    def config(self) -> dict:
        return json.loads(self.files["/config.json"])

    def _run_app(self) -> None:
        """What the app does after boot: connect (retrying), birth, one telemetry batch."""
        cfg = self.config
        device, prefix = cfg["device_id"], cfg["prefix"]
        for attempt in range(40):
            connected = threading.Event()
            refused: list[str] = []
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311)
            client.username_pw_set(cfg["mqtt"]["username"], cfg["mqtt"]["password"])
            client.will_set(protocol.topic(prefix, device, "status"), protocol.encode_status(False), 1, True)

            def on_connect(c, u, f, reason, p, connected=connected, refused=refused):
                if reason.is_failure:
                    refused.append(str(reason))
                connected.set()
            client.on_connect = on_connect
            try:
                client.connect(cfg["mqtt"]["host"], cfg["mqtt"]["port"], keepalive=30)
            except OSError as exc:
                self.device_log.append(f"attempt {attempt}: unreachable ({exc})")
                time.sleep(0.1)
                continue
            client.loop_start()
            connected.wait(5)
            if refused or not connected.is_set():
                self.device_log.append(f"attempt {attempt}: refused {refused}")
                client.loop_stop()
                client.disconnect()
                time.sleep(0.1)
                continue
            self.device_log.append("connected")
            try:
                client.publish(protocol.topic(prefix, device, "status"),
                               protocol.encode_status(True, boot=1, fw="test"), qos=1, retain=True).wait_for_publish(5)
                payload, _ = next(protocol.batches(device, 1, [{"seq": 0, "ts": int(time.time()), "power_w": 42.0}],
                                                   signer=signing.from_hex(cfg.get("sign_key"))))
                client.publish(protocol.topic(prefix, device, "telemetry"), payload, qos=1).wait_for_publish(5)
            except (RuntimeError, ValueError) as exc:  # dropped by the broker meanwhile: retry like the app
                self.device_log.append(f"attempt {attempt}: publish failed ({exc})")
                client.loop_stop()
                continue
            self.device_log.append("published")
            client.disconnect()
            client.loop_stop()
            return

    def join(self, timeout: float = 10) -> None:
        for thread in self._threads:
            thread.join(timeout)
