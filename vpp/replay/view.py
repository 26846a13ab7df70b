"""A finished replay's output folder as the operator's view (a vpp.view.SiteView), for
`vpp replay ... --serve`: the same page as a live agent's, read from the run's store at the
end of the run. Nothing changes there any more, so each part is read once."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from vpp.replay.runner import STORE
from vpp.replay.scenario import Scenario
from vpp.replay.summary import SUMMARY_FILE
from vpp.store.store import Store
from vpp.store_view import StoredSite
from vpp.view import AgentMetrics, Chart, DeviceStatus, EventStatus, PlanRow, SiteStatus


class ReplayView:
    """The view of `out_dir` (its `store.sqlite`; the strategy from `summary.json`)."""

    def __init__(self, scenario: Scenario, out_dir: Path) -> None:
        path = out_dir / STORE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no store (run the replay first)")
        self.scenario = scenario
        self.stored = StoredSite(scenario.site, Store(path))
        summary = out_dir / SUMMARY_FILE
        self.summary: dict[str, Any] = json.loads(summary.read_text()) if summary.is_file() else {}

    @functools.cache  # noqa: B019 (one view per served folder, kept for the server's life)
    def status(self) -> SiteStatus:
        site, sc = self.scenario.site, self.scenario
        values = self.stored.last_values()
        meter = self.stored.meter
        health = self.stored.last_health()
        return SiteStatus(
            site_id=site.id,
            name=site.config.name or sc.name,
            timezone=str(sc.tz),
            mode="replay",
            now=sc.end,
            site_import_kw=values.get(meter, (None, {}))[1].get("import_power_kw")
            if meter
            else None,
            import_limit_kw=site.config.limits.import_kw,
            target=None,
            strategy=str(self.summary.get("strategy", sc.strategy)),
            broker_connected=None,
            devices=len(site.devices),
            devices_online=sum(1 for d in site.devices if health.get(d.id, ("",))[0] != "offline"),
            plan_made_at=None,
        )

    @functools.cache  # noqa: B019
    def devices(self) -> list[DeviceStatus]:
        values = self.stored.last_values()
        health = self.stored.last_health()
        commands = self.stored.last_commands()
        out = []
        for d in self.scenario.site.devices:
            state, reason, since = health.get(d.id, ("unknown", "", None))
            read_ts, vals = values.get(d.id, (None, {}))
            out.append(
                DeviceStatus(
                    id=d.id,
                    kind=str(d.kind),
                    health=state,
                    reason=reason,
                    since=since,
                    read_ts=read_ts,
                    values=vals,
                    last_command=commands.get(d.id),
                )
            )
        return out

    @functools.cache  # noqa: B019
    def events(self) -> list[EventStatus]:
        return self.stored.events(self.scenario.end)

    def report(self, event_id: str) -> dict[str, Any] | None:
        return self.stored.latest_report(event_id)

    def plan(self) -> list[PlanRow]:
        return []  # the run's plans are not kept

    @functools.cache  # noqa: B019
    def chart(self) -> Chart:
        sc = self.scenario
        return self.stored.chart(sc.start, sc.end, self.events())

    def metrics(self) -> AgentMetrics | None:
        return None  # nothing runs
