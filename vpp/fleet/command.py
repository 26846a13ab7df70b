"""`vpp aggregate FLEET.yaml`'s body: the fleet file read, the broker option applied, the
store opened, the aggregator built on the wall clock; every problem one line naming the
option or the field (`Refused`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from devices.clock import WallClock
from vpp.fleet.aggregator import Aggregator
from vpp.fleet.config import FleetError, load_fleet
from vpp.site import BrokerConfig


class Refused(Exception):
    """The command cannot start; the message names the option or the field (exit 2)."""


def aggregator_for(fleet_file: Path, broker: str | None, settlement: Path | None) -> Aggregator:
    """The aggregator `vpp aggregate` runs."""
    try:
        fleet = load_fleet(fleet_file)
    except FleetError as e:
        raise Refused(str(e)) from e
    try:
        if broker:
            fleet = fleet.model_copy(update={"broker": BrokerConfig.from_url(broker, fleet.broker)})
        return Aggregator(fleet, WallClock(), settlement=settlement)
    except ValueError as e:  # the broker URL, credentials or TLS files: names the field
        raise Refused(str(e)) from e
    except (OSError, sqlite3.Error) as e:
        raise Refused(f"{fleet_file}: store: cannot open the store {fleet.store}: {e}") from e
