"""A bare paho-mqtt subscriber, the gateway benchmark's ceiling: QoS 1, automatic acks, no
work. Run as its own process, like a gateway, so that two of them can be compared with two
gateways.

    python -m bench.bare_subscriber --port P --client-id ID [--share GROUP] [--create]

With --create it makes its persistent session and subscription, then exits. Otherwise it
takes up that session, receives what the broker queued for it, and once nothing came for
--idle seconds prints {"messages": n, "first": t, "last": t} (wall-clock seconds) and exits.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOPIC = "boucle/v1/+/telemetry"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--share", default="")
    parser.add_argument("--create", action="store_true")
    parser.add_argument("--idle", type=float, default=2.0)
    args = parser.parse_args()
    got = {"n": 0, "first": 0.0, "last": 0.0}
    subscribed = threading.Event()

    def on_message(_c, _u, _m):
        now = time.time()
        if got["n"] == 0:
            got["first"] = now
        got["n"] += 1
        got["last"] = now

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 1000
    client.connect("127.0.0.1", args.port, clean_start=False, properties=props)
    client.subscribe((f"$share/{args.share}/" if args.share else "") + TOPIC, qos=1)
    client.loop_start()
    subscribed.wait(10)
    if not args.create:
        started = time.time()
        while True:
            time.sleep(0.05)
            now = time.time()
            if got["n"] and now - got["last"] > args.idle:
                break
            if not got["n"] and now - started > 120:
                break
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"messages": got["n"], "first": got["first"], "last": got["last"]}))


if __name__ == "__main__":
    main()
