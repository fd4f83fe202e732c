"""Real servers for the tests: Mosquitto, InfluxDB and a NATS cluster on free ports, own
config and data.

Each server is a subprocess with its config and data folder under a pytest tmp dir.
`stop()` and `start()` may be called again to simulate an outage (same port, same data).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from boucle.broker import free_port, stop_process, wait_listening

__all__ = ["InfluxDB", "Mosquitto", "NatsCluster", "free_port", "wait_port"]


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Wait for a test server to listen; raise if it exited or did not listen in time."""
    if wait_listening(port, timeout, lambda: proc is None or proc.poll() is None):
        return
    if proc is not None and proc.poll() is not None:
        raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class Mosquitto:
    """A real mosquitto broker. Extra config lines (auth, ACL, limits) may be passed."""

    def __init__(self, workdir: Path, extra_config: str = "", port: int | None = None):
        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_config = extra_config
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "mosquitto.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {data}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if "allow_anonymous" not in self.extra_config:
            lines.append("allow_anonymous true")
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config + "\n")

    def start(self) -> Mosquitto:
        if self.binary is None:
            raise FileNotFoundError("mosquitto binary not found (apt-get install mosquitto)")
        self.write_config()
        # mosquitto refuses to run as root unless told which user to be; stay as ourselves.
        if os.geteuid() == 0 and "user " not in self.extra_config:
            with self.config_path.open("a") as f:
                f.write("user root\n")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"),
        )
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class InfluxDB:
    """A real InfluxDB 1.x server (Debian's `influxd`), HTTP API on a free port."""

    def __init__(self, workdir: Path):
        self.binary = shutil.which("influxd") or ("/usr/bin/influxd" if os.path.exists("/usr/bin/influxd") else None)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.bind_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "influxd.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        d = self.workdir
        conf = d / "influxdb.conf"
        conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.bind_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
""")
        return conf

    def start(self) -> InfluxDB:
        if self.binary is None:
            raise FileNotFoundError("influxd binary not found (apt-get install influxdb)")
        conf = self.write_config()
        self.proc = subprocess.Popen([self.binary, "-config", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("ab"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                    if r.status == 204:
                        return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("influxd did not answer /ping within 30 s")

    def stop(self) -> None:
        stop_process(self.proc, 15)
        self.proc = None


class NatsCluster:
    """A real NATS cluster (Debian's `nats-server`, 2.9): `size` nodes on the loopback,
    each with JetStream (its own store folder), an MQTT listener and a monitoring port.
    Devices publish MQTT to any node; the gateway consumes from JetStream.

    A node can be SIGKILLed (`kill`) and started again on the same ports and data
    (`start_node`), as a crashed machine comes back."""

    def __init__(self, workdir: Path, size: int = 3, authorization: Path | None = None,
                 env: dict[str, str] | None = None):
        """`authorization`: a users file each node includes (deploy/nats/authorization.conf's
        format); `env`: variables its `$NAME`s read (the service passwords)."""
        self.authorization = authorization
        self.env = {**os.environ, **(env or {})}
        self.binary = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.names = [f"n{i + 1}" for i in range(size)]
        self.client_ports = [free_port() for _ in self.names]
        self.route_ports = [free_port() for _ in self.names]
        self.mqtt_ports = [free_port() for _ in self.names]
        self.monitor_ports = [free_port() for _ in self.names]
        self.procs: list[subprocess.Popen | None] = [None] * size

    @property
    def urls(self) -> str:
        """BOUCLE_NATS_SERVERS: every node."""
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)

    def config(self, i: int) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        conf = self.workdir / f"{self.names[i]}.conf"
        conf.write_text(f"""server_name: {self.names[i]}
listen: 127.0.0.1:{self.client_ports[i]}
http: 127.0.0.1:{self.monitor_ports[i]}
jetstream {{ store_dir: "{self.workdir / self.names[i]}" }}
cluster {{ name: boucle, listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}
mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]} }}
""" + self._include())
        return conf

    def _include(self) -> str:
        """NATS reads an include relative to the including file: a copy beside the configs."""
        if self.authorization is None:
            return ""
        shutil.copyfile(self.authorization, self.workdir / "authorization.conf")
        return "include ./authorization.conf\n"

    def start(self) -> NatsCluster:
        if self.binary is None:
            raise FileNotFoundError("nats-server binary not found (apt-get install nats-server)")
        for i in range(len(self.names)):
            self._spawn(i)
        for i in range(len(self.names)):
            self.wait_ready(i)
        return self

    def _spawn(self, i: int) -> None:
        log = (self.workdir / f"{self.names[i]}.log").open("ab")
        self.procs[i] = subprocess.Popen([self.binary, "-c", str(self.config(i))],
                                         stdout=subprocess.DEVNULL, stderr=log, env=self.env)

    def start_node(self, i: int) -> None:
        """Start node `i` again (same ports, same JetStream data) and wait until it is ready."""
        self._spawn(i)
        self.wait_ready(i)

    def wait_ready(self, i: int, timeout: float = 60) -> None:
        """Until the node serves MQTT and its /healthz says its JetStream joined the cluster's
        metadata. (Not the full /healthz: nats-server 2.9.10 can report another node's
        retained-messages consumer "not current" for minutes after a restart, seen here.)"""
        wait_port(self.mqtt_ports[i], timeout, self.procs[i])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_ports[i]}/healthz?js-server-only=true", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"nats-server {self.names[i]} exited with {self.procs[i].returncode}")
            time.sleep(0.2)
        raise TimeoutError(f"nats-server {self.names[i]} not healthy after {timeout} s")

    def kill(self, i: int) -> None:
        """SIGKILL node `i`: no goodbye to its peers, nothing flushed."""
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.procs[i] = None

    def consumers(self, stream: str) -> list[dict]:
        """What each live node reports of the stream's consumers (for failure messages)."""
        out = []
        for i, port in enumerate(self.monitor_ports):
            if self.procs[i] is None:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?consumers=true", timeout=5) as r:
                    report = json.loads(r.read())
            except OSError as exc:
                out.append({"node": self.names[i], "error": str(exc)})
                continue
            for account in report.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail["name"] == stream:
                        out.append({"node": self.names[i], "stream": detail.get("state"),
                                    "consumers": detail.get("consumer_detail")})
        return out

    def stream_leader(self, stream: str) -> int:
        """The index of the node that leads `stream` (the JetStream RAFT group's leader)."""
        for i, port in enumerate(self.monitor_ports):
            if self.procs[i] is None:
                continue
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?streams=true", timeout=5) as r:
                report = json.loads(r.read())
            for account in report.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    leader = (detail.get("cluster") or {}).get("leader")
                    if detail["name"] == stream and leader:
                        return self.names.index(leader)
        raise LookupError(f"no node leads {stream}")

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            stop_process(proc)
            self.procs[i] = None
