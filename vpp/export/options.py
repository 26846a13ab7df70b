"""`vpp export`'s options turned into an ExportRange, each bad one an ExportError naming it.

`--from` / `--to`: ISO 8601 datetimes. One with an offset (`2026-07-15T00:00+08:00`, `...Z`)
is that instant; one without (or a date alone, meaning its midnight) is in the site's time
zone when `--site` is given, and refused otherwise (a store holds UTC and does not know
where it is). Default: the store's first and last telemetry window, out to whole intervals.
Times in the files are in the site's zone with `--site`, else UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from vpp.export.tables import ExportRange
from vpp.grid.types import parse_duration

MIN_RESOLUTION = timedelta(minutes=1)
MAX_RESOLUTION = timedelta(days=31)


class ExportError(ValueError):
    """A bad option or input file; the message starts with the option's name."""


@dataclass(frozen=True)
class SiteFacts:
    """What an export takes from the site file: its zone, store file, telemetry window and
    each device's power point."""

    tz: tzinfo
    store: Path
    window_s: float
    power_points: dict[str, str]


def site_facts(path: Path) -> SiteFacts:
    """The site file's facts for an export; ExportError names `--site` and the problem."""
    from vpp.kinds import plugin_for
    from vpp.site import SiteError, load_site

    try:
        site = load_site(path)
    except SiteError as e:
        raise ExportError(f"--site: {e}") from None
    points = {
        d.id: plugin_for(d.kind).telemetry_fields.get("power_kw", "power_kw") for d in site.devices
    }
    return SiteFacts(
        tz=site.tz,
        store=site.config.store.file(site.id),
        window_s=site.config.store.telemetry_resolution_s,
        power_points=points,
    )


def default_power_points() -> tuple[str, ...]:
    """The power points of every registered kind (`power_kw`, the meter's `import_power_kw`):
    without a site file, a device's power is the first of these it has."""
    from vpp.kinds import plugins

    names = [p.telemetry_fields.get("power_kw") for p in plugins()]
    return tuple(dict.fromkeys(n for n in names if n))


def parse_resolution(text: str) -> timedelta:
    """`--resolution`: an ISO 8601 duration from PT1M to P31D."""
    try:
        step = parse_duration(text)
    except ValueError as e:
        raise ExportError(f"--resolution: {e}") from None
    if not MIN_RESOLUTION <= step <= MAX_RESOLUTION:
        raise ExportError(f"--resolution: {text} is outside PT1M..P31D")
    return step


def parse_when(option: str, text: str, tz: tzinfo | None) -> datetime:
    """`--from` / `--to`: an aware datetime (see the module docstring)."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(
            f"{option}: {text!r} is not an ISO 8601 datetime (e.g. 2026-07-15T00:00+08:00)"
        ) from None
    if t.tzinfo is None:
        if tz is None:
            raise ExportError(
                f"{option}: {text} has no UTC offset: give one (e.g. +08:00) or --site"
            )
        t = t.replace(tzinfo=tz)
    return t


def floor_local(t: datetime, step: timedelta, tz: tzinfo) -> datetime:
    """`t` floored to a whole `step` after its local midnight (a day for steps of a day or
    more)."""
    local = t.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        return midnight
    k = math.floor((local - midnight) / step)
    return midnight + k * step


def export_range(
    *,
    start: str | None,
    end: str | None,
    resolution: str,
    span: tuple[float, float] | None,
    site: SiteFacts | None,
    default_points: tuple[str, ...],
) -> ExportRange:
    """The range an export covers (`span`: the store's first and last window, unix s)."""
    step = parse_resolution(resolution)
    tz: tzinfo = site.tz if site is not None else UTC
    site_tz = site.tz if site is not None else None
    lo = parse_when("--from", start, site_tz) if start else None
    hi = parse_when("--to", end, site_tz) if end else None
    if lo is None or hi is None:
        if span is None:
            raise ExportError(
                f"{'--from' if lo is None else '--to'}: the store has no telemetry to take it "
                "from: give --from and --to"
            )
        if lo is None:
            lo = floor_local(datetime.fromtimestamp(span[0], UTC), step, tz)
        if hi is None:
            last = datetime.fromtimestamp(span[1], UTC)
            hi = floor_local(last, step, tz) + step
    if hi <= lo:
        raise ExportError(f"--to: {hi.isoformat()} is not after --from {lo.isoformat()}")
    return ExportRange(
        start=lo,
        end=hi,
        resolution=step,
        tz=tz,
        window_s=site.window_s if site is not None else None,
        power_points=dict(site.power_points) if site is not None else {},
        default_power_points=default_points,
    )
