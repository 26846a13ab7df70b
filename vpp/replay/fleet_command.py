"""`vpp fleet replay FLEET_SCENARIO.yaml --out DIR`'s body: the fleet scenario read (one-line
errors naming the field), the broker started (embedded amqtt by default, as `vpp replay`),
the fleet run (vpp.replay.fleet_run) and its outputs (vpp.replay.fleet_outputs)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from vpp.replay.broker import NATS, replay_broker
from vpp.replay.fleet_outputs import write_fleet_outputs
from vpp.replay.fleet_run import run_fleet
from vpp.replay.fleet_scenario import FleetScenario, FleetScenarioError, load_fleet_scenario


def _empty(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


async def replay_fleet(
    fs: FleetScenario, out: Path, *, broker_url: str | None = None
) -> dict[str, Any]:
    """Replay `fs` into `out` (emptied first); returns the summary. FleetScenarioError when
    the scenario takes a broker node down but the replay runs on no cluster of its own."""
    if fs.config.broker_down and broker_url != NATS:
        raise FleetScenarioError(
            f"{fs.source}: broker_down[0]: a broker node down needs the replay's own NATS "
            f"cluster (--broker {NATS})"
        )
    _empty(out)
    async with replay_broker(broker_url) as broker:
        result = await run_fleet(fs, out, broker)
    return write_fleet_outputs(fs, result, out)


def fleet_replay_command(
    path: Path, out: Path, broker_url: str | None, duration: timedelta | None
) -> dict[str, Any]:
    """Load, shorten if asked, replay (raises FleetScenarioError naming the field)."""
    fs = load_fleet_scenario(path)
    if duration is not None:
        fs = fs.with_duration(duration)
    return asyncio.run(replay_fleet(fs, out, broker_url=broker_url))
