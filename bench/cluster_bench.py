"""The clustered ingest path beside one Mosquitto, same run: readings/s into durable
storage through a 3-node NATS cluster (devices' MQTT on every node, gateways on one
JetStream durable consumer) with 1 and 2 gateways, and the same through one Mosquitto.

Method: bench.gateway_bench's (the consumer exists, a backlog is published and acked by
the broker, then the gateways drain it; readings/s from the first to the last stored).
Each device publishes to one node, the devices spread over the three. Also the rate the
brokers accepted the backlog at from 12 connections (QoS 1, every PUBACK: for NATS,
stored in the R3 `$MQTT_msgs` stream). All of it on one 2-core machine: three NATS nodes share the cores
with the gateways and the publishers, so a node's figure here is a floor.

    python -m bench.cluster_bench 5000
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from paho.mqtt.enums import MQTTProtocolVersion

from bench.gateway_bench import MosquittoPath, bench_gateway, publish_spread
from tests.servers import NatsCluster


class ClusterPath:
    """A 3-node NATS cluster on the loopback; the gateways on one durable consumer."""

    name = "cluster"

    def __init__(self, workdir: Path):
        self.server = NatsCluster(workdir / "nats").start()

    def gateway_env(self, processes: int) -> dict[str, str]:
        return {"BOUCLE_INPUT": "jetstream", "BOUCLE_NATS_SERVERS": self.server.urls,
                "BOUCLE_MQTT_PORT": str(self.server.mqtt_ports[0]), "BOUCLE_SHARE_GROUP": "bench"}

    def publish(self, messages: list[tuple[str, bytes]]) -> float:
        """The devices spread over the three nodes (MQTT 3.1.1: all NATS speaks)."""
        return publish_spread(self.server.mqtt_ports, messages, MQTTProtocolVersion.MQTTv311)

    def pids(self) -> list[int]:
        return [p.pid for p in self.server.procs if p is not None]

    def stop(self) -> None:
        self.server.stop()


def bench_paths(messages: int, readings_per_payload: int, workdir: str | Path,
                gateways: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Mosquitto and the cluster, with each number of gateways, the same backlog."""
    return [bench_gateway(processes, readings_per_payload, messages, workdir, path)
            for path in (MosquittoPath, ClusterPath) for processes in gateways]


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        runs = bench_paths(messages, 1, tmp)
    print("| broker | gateways | readings/s | gateway readings per CPU-s | broker accepted, messages/s "
          "| broker messages per CPU-s | stored |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['broker']} | {r['processes']} | {r['readings_per_s']:,.0f} | {r['gateway_readings_per_cpu_s']:,.0f} "
              f"| {r['published_messages_per_s']:,.0f} | {r['broker_messages_per_cpu_s']:,.0f} "
              f"| {r['readings']}/{r['expected']} |")
    print(json.dumps({"machine_cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
