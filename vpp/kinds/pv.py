"""PV array: not a knob; its forecast generation lowers the site's planned import."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from building.params import PvParams
from building.weather import Environment
from devices.profile import Kind
from vpp.kinds.base import DeviceSeries, Direction, KindPlugin
from vpp.kinds.registry import register
from vpp.site import Device


class PvKind(KindPlugin):
    kind = Kind.pv
    wire_kind = "pv"
    params = PvParams
    direction = Direction.produces

    def rating_kw(self, device: Device) -> float | None:
        model = self.model(device)  # an inverter's profile has no kW range: its array's size
        return model.rated_kw if isinstance(model, PvParams) else None

    def forecast(
        self, device: Device, model: Any, env: Environment, mids: list[datetime]
    ) -> DeviceSeries:
        p = model
        assert isinstance(p, PvParams)
        rated = p.rated_kw * p.derate
        return DeviceSeries(generation_kw=[rated * env.irradiance_w_m2(t) / 1000 for t in mids])


register(PvKind())
