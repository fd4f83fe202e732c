"""Gateway ingest benchmark: readings/s into durable storage, beside the ceiling of a
bare paho-mqtt subscriber on the same broker, measured in the same run.

Method (both sides alike): the subscriber's persistent session is created, the subscriber
goes away, N messages are published and queued by the broker for it, then the subscriber
comes back and drains them. The figure is readings taken off the broker per second
(paho: received and acked; gateway: committed to the spool, stored, and in the store),
from the first to the last, so start-up time does not count.

    python -m bench.gateway_bench            # a medium run, printed as a table
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from boucle_fw.protocol import encode_batch, encode_reading, topic
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from boucle.registry import load_registry
from boucle.settings import DEFAULT_REGISTRY
from boucle.storage.sqlite import SQLiteStore
from tests.servers import Mosquitto, free_port

REPO = Path(__file__).resolve().parent.parent


def payloads(messages: int, readings_per_payload: int, t0: int | None = None) -> list[tuple[str, bytes]]:
    """Telemetry of the example registry's energy meters, round-robin over devices."""
    devices = [d.id for d in load_registry(DEFAULT_REGISTRY).devices if d.kind == "energy"]
    t0 = t0 or int(time.time()) - 86400
    seq = dict.fromkeys(devices, 0)
    out = []
    for i in range(messages):
        device = devices[i % len(devices)]
        readings = []
        for _ in range(readings_per_payload):
            seq[device] += 1
            s = seq[device]
            readings.append(encode_reading({"seq": s, "ts": t0 + s, "energy_wh": 1000 + s, "power_w": 420.0}))
        out.append((topic("boucle/v1", device, "telemetry"), encode_batch(device, 1, readings)))
    return out


def bench_signature_check(readings_per_payload: int, messages: int = 500) -> dict:
    """The parse stage (gateway.output.parse_batch, in this process) on the same telemetry
    unsigned and signed with each device's key, every signature checked: µs per message,
    the best of 30 interleaved runs of each, in the same run."""
    from boucle_fw.signing import Signer

    from gateway.output import parse_batch
    from gateway.parse import Signing
    from gateway.spool import Spooled

    plain = payloads(messages, readings_per_payload)
    keys = {t.split("/")[2]: bytes([i % 256]) * 32 for i, (t, _p) in enumerate(plain)}
    signers = {d: Signer(k) for d, k in keys.items()}
    signed = []
    for t, p in plain:  # the same readings, signed as the firmware signs (the MAC over the unsigned bytes)
        signed.append((t, p[:-1] + b',"sig":"' + signers[t.split("/")[2]].hexmac(p) + b'"}'))
    now = time.time() + 86400
    variants = {"unsigned": ([Spooled(i, now, t, p, False) for i, (t, p) in enumerate(plain)], Signing({})),
                "signed": ([Spooled(i, now, t, p, False) for i, (t, p) in enumerate(signed)], Signing(keys))}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(30):  # interleaved, so that both see the same load of a shared machine
        for name, (spooled, signing) in variants.items():
            t0 = time.perf_counter()
            parsed = parse_batch(spooled, "boucle/v1", None, now=now, max_future_skew_s=300, max_payload_bytes=8192,
                                 signing=signing)
            best[name] = min(best[name], time.perf_counter() - t0)
            if parsed.letters or parsed.received != messages * readings_per_payload:
                raise RuntimeError(f"{name}: {len(parsed.letters)} refused, e.g. {parsed.letters[:1]}")
    return {f"{name}_us": seconds / messages * 1e6 for name, seconds in best.items()}


def _publish(port: int, messages: list[tuple[str, bytes]], client_id: str = "bench-publisher",
             protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5) -> None:
    """Publish QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes used so far, from /proc (Linux)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / os.sysconf("SC_CLK_TCK")


PUBLISHERS = 12
"""MQTT clients that publish a backlog, each device's messages through one of them: a
broker serves many devices at once (NATS stores each QoS 1 message before the next of
the same connection, so one connection alone measures its round trip, not the broker)."""


def publish_spread(ports: list[int], messages: list[tuple[str, bytes]], protocol: MQTTProtocolVersion,
                   clients: int = PUBLISHERS) -> float:
    """Publish from `clients` connections in parallel, spread over the brokers' `ports`,
    each device's messages through one connection; the seconds until every PUBACK."""
    shares: list[list[tuple[str, bytes]]] = [[] for _ in range(clients)]
    homes: dict[str, int] = {}
    for name, payload in messages:
        shares[homes.setdefault(name.split("/")[2], len(homes) % clients)].append((name, payload))
    threads = [threading.Thread(target=_publish, args=(ports[i % len(ports)], share, f"bench-publisher-{i}", protocol))
               for i, share in enumerate(shares) if share]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _broker(workdir: Path) -> Mosquitto:
    return Mosquitto(workdir / "mosquitto", extra_config="max_inflight_messages 1000\n").start()


class MosquittoPath:
    """One Mosquitto: the gateways on its persistent sessions, a shared subscription when
    more than one."""

    name = "mosquitto"

    def __init__(self, workdir: Path):
        self.server = _broker(workdir)

    def gateway_env(self, processes: int) -> dict[str, str]:
        return {"BOUCLE_MQTT_PORT": str(self.server.port), "BOUCLE_SHARE_GROUP": "bench" if processes > 1 else ""}

    def publish(self, messages: list[tuple[str, bytes]]) -> float:
        """Publish and wait for the broker's acks; the seconds it took."""
        return publish_spread([self.server.port], messages, MQTTProtocolVersion.MQTTv5)

    def pids(self) -> list[int]:
        return [self.server.proc.pid]

    def stop(self) -> None:
        self.server.stop()


def _bare(port: int, client_id: str, share: str, *create: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.bare_subscriber", "--port", str(port),
                             "--client-id", client_id, "--share", share, *create],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def bench_paho_ceiling(readings_per_payload: int, messages: int, workdir: str | Path, processes: int = 1) -> dict:
    """Bare paho subscribers (bench.bare_subscriber: QoS 1, automatic acks, no work), each
    its own process, on a shared subscription when more than one: the ceiling."""
    workdir = Path(workdir)
    broker = _broker(workdir / f"paho-{processes}-{readings_per_payload}")
    share = "bench" if processes > 1 else ""
    try:
        for p in [_bare(broker.port, f"bench-paho-{i}", share, "--create") for i in range(processes)]:
            p.communicate(timeout=60)
        _publish(broker.port, payloads(messages, readings_per_payload))
        procs = [_bare(broker.port, f"bench-paho-{i}", share) for i in range(processes)]
        results = [json.loads(p.communicate(timeout=900)[0]) for p in procs]
        got = [r for r in results if r["messages"]]
        n = sum(r["messages"] for r in got)
        elapsed = max(1e-9, max(r["last"] for r in got) - min(r["first"] for r in got))
        return {"processes": processes, "messages": n, "readings": n * readings_per_payload,
                "readings_per_s": (n - 1) * readings_per_payload / elapsed}
    finally:
        broker.stop()


def _gateway(broker_env: dict[str, str], store: Path, spool: Path, client_id: str,
             metrics_port: int) -> subprocess.Popen:
    env = {**os.environ, **broker_env, "BOUCLE_STORE_URL": f"sqlite:///{store}",
           "BOUCLE_SPOOL_PATH": str(spool), "BOUCLE_CLIENT_ID": client_id,
           "BOUCLE_METRICS_PORT": str(metrics_port), "BOUCLE_MAX_FUTURE_SKEW_S": "300"}
    log = (spool.parent / f"{client_id}.log").open("ab")  # the gateway's own log, if it fails
    return subprocess.Popen([sys.executable, "-m", "boucle", "gateway"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log)


def _wait_started(proc: subprocess.Popen, metrics_port: int, log: Path, timeout: float = 120) -> None:
    """Until the gateway answers /healthz, which it serves once the broker confirmed its
    subscription (a fixed sleep was too short on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode} before it started (its log: {log})")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 503: started, not (yet) healthy
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"gateway did not start within {timeout:.0f} s")


def bench_gateway(processes: int, readings_per_payload: int, messages: int, workdir: str | Path,
                  path: type = MosquittoPath) -> dict:
    """`processes` gateways (sharing the broker's messages when more than one) into the
    embedded store, on the ingest path `path` (a MosquittoPath, bench.cluster_bench.ClusterPath)."""
    workdir = Path(workdir) / f"gateway-{path.name}-{processes}-{readings_per_payload}"
    workdir.mkdir(parents=True, exist_ok=True)
    broker = path(workdir)
    store_path = workdir / "boucle.db"
    broker_env = broker.gateway_env(processes)
    procs: list[subprocess.Popen] = []
    try:
        def start(i: int) -> subprocess.Popen:
            log = workdir / f"bench-gw-{i}.log"
            for attempt in range(3):  # a free port can be taken before the gateway binds it
                port = free_port()
                proc = _gateway(broker_env, store_path, workdir / f"spool-{i}.db", f"bench-gw-{i}", port)
                try:
                    _wait_started(proc, port, log)
                    return proc
                except RuntimeError:
                    if attempt == 2:
                        raise
            return proc  # not reached: the third failure raised

        def start_all():
            return [start(i) for i in range(processes)]

        def stop_all(ps):
            for p in ps:
                p.terminate()
            for p in ps:
                p.wait(60)

        # First start creates the persistent sessions and subscriptions, then they go away.
        procs = start_all()
        stop_all(procs)
        # Progress is read from the spools' watermarks (a spool's ids count its messages from
        # 1, and the watermark moves once the store confirmed them): a one-row read, where
        # the store's count(*) costs milliseconds on a large table and would take CPU from
        # the gateways measured. The store is counted once at the end.
        states = [sqlite3.connect(f"file:{workdir / f'spool-{i}.state.db'}?mode=ro", uri=True)
                  for i in range(processes)]
        backlog = payloads(messages, readings_per_payload)
        broker_cpu = cpu_seconds(broker.pids())
        publish_s = broker.publish(backlog)
        broker_cpu = cpu_seconds(broker.pids()) - broker_cpu
        launched = time.perf_counter()
        procs = start_all()
        first: tuple[float, int] | None = None  # (time, messages) at the first poll that saw some stored
        gateways_cpu = 0.0
        deadline = time.monotonic() + 900
        while True:
            done = sum(c.execute("SELECT drained FROM watermark").fetchone()[0] for c in states)
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
                gateways_cpu = cpu_seconds([p.pid for p in procs])
            if done >= messages or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        gateways_cpu = cpu_seconds([p.pid for p in procs]) - gateways_cpu
        if first is not None and done > first[1]:
            rate = (done - first[1]) * readings_per_payload / (now - first[0])
        else:
            # Everything landed between two polls: count from the launch (start-up included,
            # so this underestimates the rate of a very short run).
            rate = done * readings_per_payload / (now - launched)
        store = SQLiteStore(store_path)
        devices = {d.id for d in load_registry(DEFAULT_REGISTRY).devices}
        n = sum(store.reading_counts(sorted(devices), 0, 2**31).values())
        expected = messages * readings_per_payload
        drained = (done - first[1]) if first else done
        return {"processes": processes, "readings": n, "expected": expected, "readings_per_s": rate,
                "broker": path.name, "published_messages_per_s": messages / publish_s,
                # Per core: what one fully busy core would do, from the CPU time the broker's
                # processes (all nodes) spent accepting the backlog, and the gateways draining it.
                "broker_messages_per_cpu_s": messages / broker_cpu if broker_cpu else None,
                "gateway_readings_per_cpu_s": drained * readings_per_payload / gateways_cpu if gateways_cpu else None}
    finally:
        if procs:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
        broker.stop()


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for rpp in (1, 10):
            ceiling = bench_paho_ceiling(rpp, messages, tmp)["readings_per_s"]
            for procs in (1, 2):
                bare = ceiling if procs == 1 else bench_paho_ceiling(rpp, messages, tmp, procs)["readings_per_s"]
                got = bench_gateway(procs, rpp, messages, tmp)
                rows.append((rpp, procs, got["readings_per_s"], bare, ceiling, got["readings"], got["expected"]))
        print("| readings/payload | processes | gateway readings/s | bare paho, same processes | ratio to 1 bare "
              "| stored |")
        print("|---|---|---|---|---|---|")
        for rpp, procs, rate, bare, ceiling, n, expected in rows:
            print(f"| {rpp} | {procs} | {rate:,.0f} | {bare:,.0f} | {rate / ceiling:.2f} | {n}/{expected} |")
        print(json.dumps({"machine_cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
