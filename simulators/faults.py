"""Faults a simulated device can be told to show, from the site file or at run time."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """`offline`: connection refused (Modbus) / disconnected (MQTT); `delay_s`: every answer
    (and MQTT command) this many clock seconds late; `exception_code`: every Modbus request
    answered with this exception; `write_exception_code`: every write (MQTT: command) refused
    with this exception while reads still answer; `stuck`: telemetry frozen at the values of
    the moment the fault was set; `ignore_commands`: writes accepted but not applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offline: bool = False
    delay_s: float = Field(default=0.0, ge=0)
    exception_code: Literal[1, 2, 3, 4, 5, 6, 10, 11] | None = None
    write_exception_code: Literal[1, 2, 3, 4, 5, 6, 10, 11] | None = None
    stuck: bool = False
    ignore_commands: bool = False
