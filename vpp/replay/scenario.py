"""The scenario file: which site, when, for how long, and what happens to it (weather,
prices, carbon intensity, base load, EV arrivals, DR events with their send times, faults).

Strict like the site file: unknown keys are rejected and every error names the file and the
field path, e.g. `summer.yaml: events[0].send_at: ...`. The schema is in
`vpp.replay.scenario_file`; this module loads it and answers what the replay harness needs.
Power is consumption positive (+kW drawn from the grid).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from building.params import BaseLoadParams, EvSessionSpec
from building.weather import Environment
from devices.profile import Kind, format_validation_error, read_yaml
from simulators.faults import Faults
from vpp.grid.messages import Event
from vpp.replay.evdraw import draw_sessions
from vpp.replay.scenario_file import (
    EvArrivals,
    EvVisit,
    ScenarioConfig,
    ScenarioEvent,
    build_message,
    resolve,
    span,
)
from vpp.replay.tariff import values_on
from vpp.replay.weather import read_weather_csv
from vpp.simsite import environment as site_environment
from vpp.site import Site, SiteError, load_site

__all__ = [
    "EvSession",
    "FaultSpan",
    "Scenario",
    "ScenarioConfig",
    "ScenarioError",
    "ScheduledEvent",
    "load_scenario",
    "parse_scenario",
]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field path."""


@dataclass(frozen=True)
class ScheduledEvent:
    """An event message and when the grid sends it."""

    send_at: datetime
    event: Event

    def payload(self) -> dict[str, Any]:
        """The message as JSON data (what goes on the wire)."""
        data: dict[str, Any] = json.loads(self.event.to_json())
        return data


@dataclass(frozen=True)
class FaultSpan:
    """A resolved fault window: `faults` on `device` over `[start, end)`."""

    device: str
    start: datetime
    end: datetime
    faults: Faults


@dataclass(frozen=True)
class EvSession:
    """A resolved vehicle visit (absolute times) on charger `charger`."""

    charger: str
    arrival: datetime
    departure: datetime
    energy_needed_kwh: float
    vehicle_max_kw: float


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: its validated file, the site it uses, and where it came from."""

    config: ScenarioConfig
    site: Site
    source: Path
    weather_series: tuple[tuple[tuple[datetime, float], ...], tuple[tuple[datetime, float], ...]]

    # -- time -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The scenario's name (its file stem when the file gives none)."""
        return self.config.name or self.source.stem

    @property
    def tz(self) -> ZoneInfo:
        """The scenario's time zone (the site's unless the scenario names one)."""
        return ZoneInfo(self.config.timezone or self.site.config.timezone)

    @property
    def start(self) -> datetime:
        """Start of the run, in local time."""
        return self.config.start.astimezone(self.tz)

    @property
    def duration(self) -> timedelta:
        """How long the run lasts (elapsed time)."""
        return self.config.duration

    @property
    def end(self) -> datetime:
        """End of the run (exclusive), in local time."""
        return (self.config.start.astimezone(UTC) + self.config.duration).astimezone(self.tz)

    @property
    def seed(self) -> int:
        """The run's seed (base-load noise; history noise uses seed + 1)."""
        return self.config.seed

    @property
    def strategy(self) -> str:
        """The default strategy: optimiser, rules or none."""
        return self.config.strategy

    def at(self, when: datetime | timedelta) -> datetime:
        """A scenario time (absolute or offset from the start) as a local aware datetime."""
        return resolve(when, self.start).astimezone(self.tz)

    def with_duration(self, duration: timedelta | str | float) -> Scenario:
        """The same scenario run for `duration` (e.g. shortened for a test); events, faults
        and EV visits after the new end stay in the file and simply never happen."""
        cfg = self.config.model_copy(update={"duration": span(duration)})
        return Scenario(cfg, self.site, self.source, self.weather_series)

    def from_time(self, when: datetime | timedelta | str) -> Scenario:
        """The same scenario begun later (e.g. at noon for an afternoon event, in a test):
        it ends where it did, every time in it stays where it was (offsets become absolute
        times; an event sent before the new start is sent at it), and the vehicles are the
        ones this run has (drawn ones become explicit visits). A vehicle that came before
        the new start is plugged in from it, needing all it asked for; the history days end
        at the new start."""
        new = resolve(span(when) if isinstance(when, str) else when, self.start)
        if not self.start <= new < self.end:
            raise ValueError(f"from_time: {new.isoformat()} is not within the run")
        t0, cfg = self.start, self.config

        def fixed(w: datetime | timedelta) -> datetime:
            return resolve(w, t0)

        events = [
            e.model_copy(
                update={
                    "send_at": max(fixed(e.send_at), new),
                    "start": None if e.start is None else fixed(e.start),
                    "intervals": None
                    if e.intervals is None
                    else [i.model_copy(update={"start": fixed(i.start)}) for i in e.intervals],
                }
            )
            for e in cfg.events
        ]
        faults = [
            f.model_copy(update={"from_": fixed(f.from_), "to": fixed(f.to or self.duration)})
            for f in cfg.faults
        ]
        visits: dict[str, list[EvVisit]] = {}
        for s in self.sessions():  # the site file's sessions count from the start: fixed too
            if s.departure > new:
                visits.setdefault(s.charger, []).append(
                    EvVisit(
                        arrival=s.arrival,
                        departure=s.departure,
                        energy_needed_kwh=s.energy_needed_kwh,
                        vehicle_max_kw=s.vehicle_max_kw,
                    )
                )
        update: dict[str, Any] = {
            "start": new,
            "duration": self.end.astimezone(UTC) - new.astimezone(UTC),
            "events": events,
            "faults": faults,
            "broker_restart_at": [fixed(w) for w in cfg.broker_restart_at],
            "agent_kill_at": [fixed(w) for w in cfg.agent_kill_at],
        }
        if cfg.ev_arrivals is not None or visits:
            update["ev_arrivals"] = EvArrivals(explicit=visits)
        return Scenario(cfg.model_copy(update=update), self.site, self.source, self.weather_series)

    def save(self, path: Path) -> Path:
        """Write this scenario (as changed in memory, e.g. shortened) as a file that loads
        to the same scenario from anywhere: the site and weather files by absolute path.
        The counterfactual process reads it."""
        # warnings=False: the tariff fields are a union behind a plain validator; their
        # dump is right but pydantic cannot tell which member it is.
        data = self.config.model_dump(mode="json", by_alias=True, warnings=False)
        data["site"] = str((self.source.parent / self.config.site).resolve())
        if self.config.weather.csv is not None:
            data["weather"]["csv"] = str((self.source.parent / self.config.weather.csv).resolve())
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return path

    # -- physics inputs ----------------------------------------------------------------------

    def environment(self) -> Environment:
        """The weather: the CSV series, or the built-in shape (scenario over site values)."""
        overrides: dict[str, Any] = {"timezone": str(self.tz), **self.config.weather.shape()}
        temp, irr = self.weather_series
        if temp:
            overrides["outdoor_temp_series"] = list(temp)
            overrides["irradiance_series"] = list(irr)
        return site_environment(self.site, overrides)

    def base_load(self) -> BaseLoadParams:
        """The uncontrolled load: the site file's `sim.base_load` updated by the scenario's."""
        data = {**self.site.config.sim.base_load, **self.config.base_load}
        return BaseLoadParams.model_validate(data)

    def ev_sessions(self) -> dict[str, list[EvSessionSpec]]:
        """Vehicle sessions per charger id, times in seconds after the start. Without
        `ev_arrivals`, the site file's own sessions; with it, only the scenario's."""
        out: dict[str, list[EvSessionSpec]] = {}
        for s in self.sessions():
            out.setdefault(s.charger, []).append(
                EvSessionSpec(
                    arrival=(s.arrival - self.start).total_seconds(),
                    departure=(s.departure - self.start).total_seconds(),
                    energy_needed_kwh=s.energy_needed_kwh,
                    vehicle_max_kw=s.vehicle_max_kw,
                )
            )
        return out

    def sessions(self) -> list[EvSession]:
        """Every vehicle visit with absolute times, sorted by arrival then charger."""
        chargers = [d.id for d in self.site.by_kind(Kind.ev_charger)]
        out: list[EvSession] = []
        arrivals = self.config.ev_arrivals
        if arrivals is None:
            for d in self.site.by_kind(Kind.ev_charger):
                for raw in (d.config.sim or {}).get("sessions", []):
                    spec = EvSessionSpec.model_validate(raw)
                    a, b = spec.window(self.start)
                    out.append(
                        EvSession(
                            d.id,
                            self.start + timedelta(seconds=a),
                            self.start + timedelta(seconds=b),
                            spec.energy_needed_kwh,
                            spec.vehicle_max_kw,
                        )
                    )
        else:
            for cid, visits in arrivals.explicit.items():
                for v in visits:
                    out.append(
                        EvSession(
                            cid,
                            self.at(v.arrival),
                            self.at(v.departure),
                            v.energy_needed_kwh,
                            v.vehicle_max_kw,
                        )
                    )
            for rnd in arrivals.draws(self.seed):
                taken = {
                    c: [(s.arrival, s.departure) for s in out if s.charger == c] for c in chargers
                }
                for cid, arr, dep, kwh, vmax in draw_sessions(
                    rnd, chargers, self.start, self.config.duration, self.tz, taken
                ):
                    out.append(EvSession(cid, arr, dep, kwh, vmax))
        return sorted(out, key=lambda s: (s.arrival, s.charger))

    def sim_params(self) -> dict[str, dict[str, Any]]:
        """Per-device `sim:` blocks for the replay: the site file's, with each charger's
        `sessions` replaced by the scenario's (seconds after the start)."""
        sessions = self.ev_sessions()
        out: dict[str, dict[str, Any]] = {}
        for d in self.site.devices:
            block = dict(d.config.sim or {})
            if d.kind is Kind.ev_charger:
                block["sessions"] = [s.model_dump() for s in sessions.get(d.id, [])]
            out[d.id] = block
        return out

    def replay_site(self) -> Site:
        """The site with the scenario's sim inputs written in (EV sessions per charger,
        base load, weather shape, seed), ready for `vpp.simsite.simulated_site`."""
        params = self.sim_params()
        devices = [
            d.model_copy(update={"config": d.config.model_copy(update={"sim": params[d.id]})})
            for d in self.site.devices
        ]
        env = {**self.site.config.sim.environment, **self.config.weather.shape()}
        sim = self.site.config.sim.model_copy(
            update={
                "base_load": self.base_load().model_dump(),
                "environment": env,
                "seed": self.config.seed,
            }
        )
        config = self.site.config.model_copy(
            update={"devices": [d.config for d in devices], "sim": sim, "timezone": str(self.tz)}
        )
        return Site(config=config, devices=devices, source=self.site.source)

    # -- what happens ------------------------------------------------------------------------

    def event_messages(self) -> list[ScheduledEvent]:
        """Every event message with its send time, in send order (ties: file order)."""
        out = []
        for i, e in enumerate(self.config.events):
            out.append((self.at(e.send_at), i, self.event_message(i)))
        return [ScheduledEvent(t, ev) for t, _, ev in sorted(out, key=lambda x: (x[0], x[1]))]

    def event_message(self, index: int) -> Event:
        """The contract Event of `events[index]`, validated as the site will at its send time."""
        return build_message(self.config.events[index], self.start)

    def final_events(self) -> list[Event]:
        """The newest modification of each event id, ordered by event start then id."""
        latest: dict[str, Event] = {}
        for s in self.event_messages():
            ev = s.event
            if ev.event_id not in latest or ev.modification > latest[ev.event_id].modification:
                latest[ev.event_id] = ev
        return sorted(latest.values(), key=lambda ev: (ev.start, ev.event_id))

    def fault_windows(self) -> list[FaultSpan]:
        """Fault windows with absolute times, in start order."""
        out = [
            FaultSpan(
                f.device,
                self.at(f.from_),
                self.at(f.to) if f.to is not None else self.end,
                f.faults(),
            )
            for f in self.config.faults
        ]
        return sorted(out, key=lambda f: (f.start, f.device))

    def broker_restarts(self) -> list[datetime]:
        """When the broker is restarted, in order."""
        return sorted(self.at(t) for t in self.config.broker_restart_at)

    def agent_kills(self) -> list[datetime]:
        """When the agent is killed (and started again on its store), in order."""
        return sorted(self.at(t) for t in self.config.agent_kill_at)

    # -- money and carbon --------------------------------------------------------------------

    def import_prices(self, times: list[datetime]) -> list[float]:
        """Import price per kWh at each of `times`."""
        return values_on(self.config.prices.import_per_kwh, times, self.tz)

    def export_prices(self, times: list[datetime]) -> list[float]:
        """Export price per kWh (paid to the site) at each of `times`."""
        return values_on(self.config.prices.export_per_kwh, times, self.tz)

    def carbon(self, times: list[datetime]) -> list[float]:
        """Grid carbon intensity (kg CO2 per kWh imported) at each of `times`."""
        return values_on(self.config.carbon_kg_per_kwh, times, self.tz)

    def step_grid(self, step: timedelta) -> list[datetime]:
        """Step starts (local aware times) from the start to the end (exclusive), `step`
        of elapsed time apart."""
        n = int(self.duration / step)
        t0 = self.start.astimezone(UTC)
        return [(t0 + k * step).astimezone(self.tz) for k in range(n)]


def _check(cfg: ScenarioConfig, site: Site, tz: ZoneInfo) -> list[str]:
    """Cross-checks against the site: device ids, start offset, event contract, EV sessions."""
    errors: list[str] = []
    ids = {d.id for d in site.devices}
    start = cfg.start
    local_offset = start.astimezone(tz).utcoffset()
    if start.utcoffset() != local_offset:
        errors.append(
            f"start: offset {start.isoformat()[19:]} is not {tz.key}'s offset at that time "
            f"({start.astimezone(tz).isoformat()[19:]})"
        )
    for i, f in enumerate(cfg.faults):
        if f.device not in ids:
            errors.append(f"faults[{i}].device: the site has no device {f.device!r}")
        t0 = resolve(f.from_, start)
        if f.to is not None and resolve(f.to, start) <= t0:
            errors.append(f"faults[{i}].to: must be after from")
    chargers = {d.id for d in site.by_kind(Kind.ev_charger)}
    if cfg.ev_arrivals is not None:
        for cid, visits in cfg.ev_arrivals.explicit.items():
            if cid not in chargers:
                errors.append(f"ev_arrivals.explicit.{cid}: the site has no EV charger {cid!r}")
            spans = sorted((resolve(v.arrival, start), resolve(v.departure, start)) for v in visits)
            for j, (a, b) in enumerate(spans):
                if b <= a:
                    errors.append(
                        f"ev_arrivals.explicit.{cid}[{j}]: departure must be after arrival"
                    )
                if j and a < spans[j - 1][1]:
                    errors.append(f"ev_arrivals.explicit.{cid}: visits overlap")
        groups = cfg.ev_arrivals.draws(cfg.seed)
        for k, rnd in enumerate(groups):
            first = int(cfg.ev_arrivals.random is not None)
            field = "ev_arrivals.random" if k < first else f"ev_arrivals.random_groups[{k - first}]"
            for c in rnd.chargers or []:
                if c not in chargers:
                    errors.append(f"{field}.chargers: the site has no EV charger {c!r}")
    for i, e in enumerate(cfg.events):
        sent = resolve(e.send_at, start)
        ivs = e.interval_list(start)
        end = max(t + d for t, d, _ in ivs)
        if e.modification == 0 and sent > ivs[0][0] and not e.cancelled:
            errors.append(f"events[{i}].send_at: after the event starts ({ivs[0][0].isoformat()})")
        elif e.modification > 0 and sent >= end and not e.cancelled:
            # A modification may come while its event runs (deepen, extend, shorten), not
            # after its new end: it would change nothing that is still to come.
            errors.append(f"events[{i}].send_at: at or after the modified event ends ({end})")
    return errors


def parse_scenario(raw: Any, source: Path) -> Scenario:
    """Validate scenario data (already parsed from YAML); raise ScenarioError naming the field."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: (top): a scenario file is a mapping")
    try:
        cfg = ScenarioConfig.model_validate(raw)
    except ValidationError as e:
        raise ScenarioError(format_validation_error(str(source), e)) from e
    site_path = cfg.site if cfg.site.is_absolute() else source.parent / cfg.site
    try:
        site = load_site(site_path)
    except SiteError as e:
        raise ScenarioError(f"{source}: site: {e}") from e
    tz = ZoneInfo(cfg.timezone or site.config.timezone)
    errors = _check(cfg, site, tz)
    for i, ev in enumerate(cfg.events):
        errors.extend(f"events[{i}]{m}" for m in _event_errors(ev, cfg.start))
    if errors:
        raise ScenarioError("\n".join(f"{source}: {m}" for m in errors))
    series: tuple[Any, Any] = ((), ())
    if cfg.weather.csv is not None:
        csv = cfg.weather.csv if cfg.weather.csv.is_absolute() else source.parent / cfg.weather.csv
        try:
            temp, irr = read_weather_csv(csv, tz)
        except ValueError as e:
            raise ScenarioError(f"{source}: weather.csv: {e}") from e
        history_start = cfg.start - timedelta(days=cfg.history_days)
        if cfg.weather.history == "repeat_first_day":
            temp = _repeat_first_day(temp, cfg.history_days, tz)
            irr = _repeat_first_day(irr, cfg.history_days, tz)
        elif temp[0][0] > history_start:
            what = "the history's first day" if cfg.history_days else "the start"
            raise ScenarioError(
                f"{source}: weather.csv: the first row ({temp[0][0].isoformat()}) is after "
                f"{what} ({history_start.isoformat()}): give rows from then, or set "
                "weather.history: repeat_first_day"
            )
        series = (tuple(temp), tuple(irr))
    return Scenario(cfg, site, source, series)


def _repeat_first_day(
    series: list[tuple[datetime, float]], days: int, tz: ZoneInfo
) -> list[tuple[datetime, float]]:
    """`series` with its first 24 hours repeated on each of the `days` days before it, at the
    same local time of day (datetimes in the zone shift by wall-clock days, across DST)."""
    first = series[0][0]
    day = [(t.astimezone(tz), v) for t, v in series if t < first + timedelta(days=1)]
    before = [(t - timedelta(days=k), v) for k in range(days, 0, -1) for t, v in day]
    return before + series


def _event_errors(e: ScenarioEvent, start: datetime) -> list[str]:
    """Contract errors of one event as `.loc: message` suffixes."""
    try:
        build_message(e, start)
    except ValidationError as exc:
        out: list[str] = []
        for err in exc.errors():
            problems = (err.get("ctx") or {}).get("problems")
            if problems:
                out.extend(f".{loc}: {msg}" for loc, msg in problems)
            else:
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
                out.append(f"{loc}: {err['msg']}")
        return out
    return []


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (and the site file it names)."""
    path = Path(path)
    return parse_scenario(read_yaml(path, ScenarioError), path)
