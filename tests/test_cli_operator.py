"""The operator's commands (issue 16): `vpp event send` returns at the site's answer and
warns when no agent is online; `vpp status` reads the retained status and the next
telemetry. Each runs as a real `python -m vpp` process against a real Mosquitto, with a
small site in this process that answers by the contract's own parser and ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from pathlib import Path

import aiomqtt
import pytest

from devices.clock import WallClock
from devices.mqtt_connect import subscribe
from tests.conftest import Broker
from vpp.grid.ledger import EventState, decide, opted_in
from vpp.grid.parse import Rejection, parse_event
from vpp.grid.topics import SiteTopics
from vpp.mqtt_link import MqttLink
from vpp.site import BrokerConfig

ROOT = Path(__file__).resolve().parent.parent
_ids = count()


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: list[str]
    stderr: str


async def vpp(*args: str, timeout_s: float = 60.0) -> Done:
    """`python -m vpp ARGS` as a child process (the event loop keeps serving the site)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vpp",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode().splitlines(), err.decode())


async def _agent(broker: Broker, topics: SiteTopics, ready: asyncio.Event) -> None:
    """A site agent's grid side: retained status online, telemetry every 0.2 s, and events
    answered `received`, then `opt_in` (by vpp.grid.parse and vpp.grid.ledger)."""
    clock = WallClock()
    known: dict[str, EventState] = {}
    status = {"v": 1, "online": True, "site_id": topics.site_id, "agent_version": "0.1.0"}
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"agent-{topics.site_id}") as c:
        await subscribe(c, topics.events.name, qos=1)  # a refusal (NATS) must not go unseen
        await c.publish(topics.status.name, json.dumps(status), qos=1, retain=True)

        async def telemetry() -> None:
            while True:
                doc = {
                    "v": 1,
                    "ts": clock.now().isoformat(),
                    "site_import_kw": 364.25,
                    "devices": {
                        "bat1": {"online": True, "power_kw": -50.0, "soc": 60.0},
                        "ev5": {"online": False},
                    },
                }
                await c.publish(topics.telemetry.name, json.dumps(doc))
                await asyncio.sleep(0.2)

        tele = asyncio.create_task(telemetry())
        ready.set()
        try:
            async for msg in c.messages:
                assert isinstance(msg.payload, bytes)
                result = parse_event(msg.payload, clock.now())
                if isinstance(result, Rejection):
                    await c.publish(topics.responses.name, result.response.to_json(), qos=1)
                    continue
                d = decide(known, result, clock.now())
                if d.state is not None:
                    known[result.event_id] = d.state
                for r in d.responses:
                    await c.publish(topics.responses.name, r.to_json(), qos=1)
                if d.plan and d.state is not None:
                    values = [iv.value for iv in result.intervals]
                    state, r = opted_in(d.state, values, clock.now())
                    known[result.event_id] = state
                    await c.publish(topics.responses.name, r.to_json(), qos=1)
        finally:
            tele.cancel()


@pytest.fixture
async def agent(mosquitto: Broker) -> AsyncIterator[SiteTopics]:
    topics = SiteTopics("vpp", f"op-site{next(_ids)}")
    ready = asyncio.Event()
    task = asyncio.create_task(_agent(mosquitto, topics, ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield topics
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _statuses(lines: list[str]) -> list[str]:
    return [json.loads(line)["status"] for line in lines]


def _in(minutes: int) -> str:
    return (WallClock().now() + timedelta(minutes=minutes)).isoformat()


async def test_event_send_returns_at_the_answer_not_at_wait_s(
    mosquitto: Broker, agent: SiteTopics
) -> None:
    # --wait-s is far beyond the child's 60 s time-out: only an early return passes.
    r = await vpp(
        "event", "send", "--site", agent.site_id, "--broker", mosquitto.url,
        "--curtail-kw", "50", "--start", _in(10), "--duration", "PT1H", "--wait-s", "600",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _statuses(r.stdout) == ["received", "opt_in"]
    assert json.loads(r.stdout[1])["expected_kw"] == [50.0]
    assert "warning" not in r.stderr  # the agent is online


async def test_an_uneven_interval_is_noted_and_sent_as_the_contract_allows(
    mosquitto: Broker, agent: SiteTopics
) -> None:
    r = await vpp(
        "event", "send", "--site", agent.site_id, "--broker", mosquitto.url,
        "--curtail-kw", "20", "--start", _in(10), "--duration", "PT2H", "--interval", "PT7M",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        "note: interval PT7M does not divide duration PT2H: 17 intervals of PT7M, then one of "
        "PT1M" in r.stderr
    )
    assert _statuses(r.stdout) == ["received", "opt_in"]
    assert len(json.loads(r.stdout[1])["expected_kw"]) == 18


async def test_an_event_of_2020_is_refused_here_and_rejected_by_the_site(
    mosquitto: Broker, agent: SiteTopics, tmp_path: Path
) -> None:
    base = ("event", "send", "--site", agent.site_id, "--broker", mosquitto.url)
    r = await vpp(*base, "--curtail-kw", "5", "--start", "2020-06-01T14:00:00+08:00",
                  "--duration", "PT1H")  # fmt: skip
    assert r.returncode == 2 and r.stdout == []
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: start: the event would end at 2020-06-01T15:00:00+08:00")
    # Sent as a file (unvalidated here), the site answers one rejected naming the field.
    old = {
        "v": 1, "event_id": "old-1", "modification": 0, "signal": "curtail_kw",
        "intervals": [{"start": "2020-06-01T14:00:00+08:00", "duration": "PT1H", "value": 5}],
    }  # fmt: skip
    (tmp_path / "old.json").write_text(json.dumps(old))
    r = await vpp(*base, "--file", str(tmp_path / "old.json"))
    assert r.returncode == 0, r.stderr
    (answer,) = [json.loads(line) for line in r.stdout]
    assert answer["status"] == "rejected"
    assert [e["loc"] for e in answer["errors"]] == ["intervals[0]"]


@pytest.mark.parametrize("retained", [None, {"v": 1, "online": False}])
async def test_event_send_warns_when_no_agent_is_online(
    mosquitto: Broker, retained: dict[str, object] | None
) -> None:
    topics = SiteTopics("vpp", f"gone{next(_ids)}")
    if retained is not None:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.publish(topics.status.name, json.dumps(retained), qos=1, retain=True)
    r = await vpp(
        "event", "send", "--site", topics.site_id, "--broker", mosquitto.url,
        "--curtail-kw", "5", "--duration", "PT1H", "--wait-s", "0.5",
    )  # fmt: skip
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    state = "has no status on the broker" if retained is None else "is offline"
    assert lines[0].startswith(f"warning: site {topics.site_id} {state}: no agent runs")
    assert "same --event-id" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("no response within 0.5 s (event_id evt-")


async def test_status_shows_an_online_site_and_its_telemetry(
    mosquitto: Broker, agent: SiteTopics
) -> None:
    r = await vpp("status", "--site", agent.site_id, "--broker", mosquitto.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout[0] == f"site {agent.site_id}: online (agent_version 0.1.0)"
    assert r.stdout[1].endswith("site import 364.2 kW") or r.stdout[1].endswith(
        "site import 364.3 kW"
    )
    assert r.stdout[2].split() == ["bat1", "online", "-50.0", "kW", "soc", "60.0"]
    assert r.stdout[3].split() == ["ev5", "offline"]
    j = await vpp("status", "--site", agent.site_id, "--broker", mosquitto.url, "--json")
    doc = json.loads(j.stdout[0])
    assert doc["status"]["online"] is True and doc["telemetry"]["site_import_kw"] == 364.25


async def test_status_of_an_offline_or_unknown_site_exits_1(mosquitto: Broker) -> None:
    topics = SiteTopics("vpp", f"off{next(_ids)}")
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        offline = {"v": 1, "online": False, "reason": "agent stopped"}
        await c.publish(topics.status.name, json.dumps(offline), qos=1, retain=True)
    r = await vpp("status", "--site", topics.site_id, "--broker", mosquitto.url)
    assert r.returncode == 1
    assert r.stdout == [f"site {topics.site_id}: offline (reason agent stopped)"]
    r = await vpp("status", "--site", "never-ran", "--broker", mosquitto.url)
    assert r.returncode == 1
    assert r.stdout == [
        "site never-ran: no status on the broker (no agent has run for this site on this "
        "broker and prefix)"
    ]


async def test_status_without_a_broker_is_one_line() -> None:
    r = await vpp("status", "--site", "x", "--broker", "mqtt://127.0.0.1:9")
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the broker at 127.0.0.1:9")


async def test_an_event_sent_while_the_agent_is_stopped_waits_for_its_next_start(
    mosquitto: Broker,
) -> None:
    """What docs/grid-messages.md ("When no agent runs") tells the operator: the agent's
    link (its persistent session) stops cleanly; `vpp status` says offline, `vpp event
    send` warns and gets no answer; the next start of the link receives that very event."""
    site_id = f"queued{next(_ids)}"
    broker = BrokerConfig(host=mosquitto.host, port=mosquitto.port)

    async def run_link() -> tuple[MqttLink, asyncio.Task[None]]:
        link = MqttLink(broker, site_id, WallClock())
        task = asyncio.create_task(link.run())
        await asyncio.wait_for(link.connected.wait(), 10)
        return link, task

    link, task = await run_link()
    await link.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    status = await vpp("status", "--site", site_id, "--broker", mosquitto.url)
    assert (status.returncode, status.stdout) == (1, [f"site {site_id}: offline"])
    r = await vpp(
        "event", "send", "--site", site_id, "--broker", mosquitto.url,
        "--curtail-kw", "5", "--start", _in(10), "--duration", "PT1H", "--wait-s", "0.5",
    )  # fmt: skip
    assert r.returncode == 1
    warning, no_response = r.stderr.strip().splitlines()
    assert warning.startswith(f"warning: site {site_id} is offline: no agent runs")
    event_id = no_response.rsplit("(event_id ", 1)[1].rstrip(")")

    link, task = await run_link()  # the agent starts again, same client id
    try:
        got = await asyncio.wait_for(link.receive(), 10)
        assert json.loads(got.payload)["event_id"] == event_id
        now = await vpp("status", "--site", site_id, "--broker", mosquitto.url, "--wait-s", "0.5")
        assert now.returncode == 0  # a link alone publishes no telemetry:
        assert now.stdout == [f"site {site_id}: online", "no telemetry came within the wait"]
    finally:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
