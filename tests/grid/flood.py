"""A flood of junk on a site's events topic, as its own process (so that the flood's CPU is
not the test's): `python -m tests.grid.flood HOST PORT TOPIC RATE SECONDS`.

Publishes at QoS 1, as a grid would on the events topic, about RATE messages per second for
SECONDS, cycling through malformed payloads (not JSON, not an object, not UTF-8) and
valid-looking junk (an event's keys with bad values). Prints the number sent on exit.
"""

from __future__ import annotations

import json
import os
import sys
import time

import paho.mqtt.client as mqtt

_JUNK_EVENT = {
    "v": 1,
    "event_id": "junk",
    "modification": 0,
    "signal": "curtail_kw",
    "intervals": [{"start": "2026-07-15T14:00:00+08:00", "duration": "PT0S", "value": -1}],
}


def payloads() -> list[bytes]:
    """The kinds of junk sent in turn."""
    return [
        b"{not json",
        b"\xff\xfe garbage",
        b"[1, 2, 3]",
        b'{"v": 2}',
        json.dumps({**_JUNK_EVENT, "event_id": "bad id!"}).encode(),
        json.dumps(_JUNK_EVENT).encode(),
        b"x" * 2000,
    ]


def flood(host: str, port: int, topic: str, rate: float, seconds: float, qos: int = 1) -> int:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flooder-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    kinds = payloads()
    sent = 0
    start = time.monotonic()
    report_at = 1.0
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                client.publish(topic, kinds[sent % len(kinds)], qos=qos)
                sent += 1
            if elapsed >= report_at:
                print(f"{elapsed:.2f} {sent}", file=sys.stderr, flush=True)
                report_at += 1.0
            time.sleep(0.005)
    finally:
        client.loop_stop()
        client.disconnect()
    return sent


if __name__ == "__main__":
    host, port, topic, rate, seconds, qos = sys.argv[1:7]
    print(flood(host, int(port), topic, float(rate), float(seconds), int(qos)), flush=True)
