"""Wait until a live agent is a site in service: every device read once, a plan made, the
control loop cycling (as bench/dispatch.py does). An event sent earlier can meet a battery
not yet read, and the site opts out for want of flexibility."""

from __future__ import annotations

import asyncio

from vpp.agent import Agent
from vpp.dr.controller import DrController


async def agent_ready(agent: Agent, dr: DrController, wall_s: float = 60.0) -> None:
    for _ in range(int(wall_s / 0.1)):  # bounded
        snap = agent.snapshot()
        polled = all(v.reason != "not polled yet" for v in snap.devices.values())
        if polled and dr.plans >= 1 and agent.cycles >= 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the agent was not ready within {wall_s} s")
