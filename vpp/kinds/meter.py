"""Site meter: the site's import, which the closed loop and the reports measure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from building.params import MeterParams
from devices.profile import Kind
from vpp.kinds.base import KindPlugin, ReportRole
from vpp.kinds.registry import register


class MeterKind(KindPlugin):
    kind = Kind.meter
    wire_kind = "meter"
    params = MeterParams
    telemetry_fields: ClassVar[Mapping[str, str]] = {"power_kw": "import_power_kw"}
    report_role = ReportRole.meter


register(MeterKind())
