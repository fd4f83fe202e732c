"""The MQTT broker for one-machine runs: Mosquitto when installed, else amqtt in-process.

Mosquitto is the production broker; amqtt (MQTT 3.1.1 only) lets `boucle up` run on a
machine where nothing can be installed system-wide.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger("boucle.broker")


class BrokerError(Exception):
    pass


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_listening(port: int, timeout: float, alive=lambda: True) -> bool:
    """Wait until something accepts connections on the loopback port; False on timeout or
    as soon as `alive()` says the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM (a server saves its state), then SIGKILL if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


class MosquittoBroker:
    """A mosquitto subprocess with a generated config: loopback only, persistence on,
    no queue limit (the default 1000 drops QoS 1 messages for a slow subscriber)."""

    name = "mosquitto"

    def __init__(self, binary: str, port: int, data_dir: Path):
        self.binary, self.port, self.dir = binary, port, data_dir / "mosquitto"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        persist = self.dir / "data"
        persist.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {persist}/", "max_queued_messages 0", "log_dest stderr",
                 "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to the `mosquitto` user, which must own its folder.
            try:
                user = pwd.getpwnam("mosquitto")
                for path in (self.dir, persist):
                    os.chown(path, user.pw_uid, user.pw_gid)
            except KeyError:
                lines.append("user root")
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        log_file = (self.dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log_file)
        if not wait_listening(self.port, 10, lambda: self.proc.poll() is None):
            raise BrokerError(f"mosquitto did not start on port {self.port}; see {self.dir / 'mosquitto.log'}")

    def stop(self) -> None:
        stop_process(self.proc)


class EmbeddedBroker:
    """amqtt on its own event loop thread (MQTT 3.1.1, anonymous, loopback)."""

    name = "amqtt (embedded)"

    def __init__(self, port: int):
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="amqtt", daemon=True)
        self.broker = None

    def start(self) -> None:
        from amqtt.broker import Broker

        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self.thread.start()

        async def boot():
            self.broker = Broker(config)
            await self.broker.start()

        try:
            asyncio.run_coroutine_threadsafe(boot(), self.loop).result(15)
        except Exception as exc:  # noqa: BLE001 - report any start failure in one line
            raise BrokerError(f"embedded broker did not start on port {self.port}: {exc}") from None

    def stop(self) -> None:
        if self.broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop).result(10)
            except Exception:
                log.debug("amqtt shutdown failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def start_broker(kind: str, port: int, data_dir: Path):
    """Start `mosquitto`, `embedded`, or `auto` (Mosquitto if on PATH) on a loopback port."""
    binary = mosquitto_binary()
    if kind == "mosquitto" and binary is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto), or use --broker embedded")
    broker = MosquittoBroker(binary, port, data_dir) if kind != "embedded" and binary else EmbeddedBroker(port)
    broker.start()
    return broker
