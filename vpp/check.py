"""`vpp check`: validate a site file, a scenario file or a device profile without running it.

What a file is comes from its content: a scenario has `duration` or `site`, a profile has
`points`, a site has `site_id`. Each file gets a one-line summary of what it holds, or its
errors (one a line, each naming the file and the field), as the loaders give them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

from devices.profile import load_profile, read_yaml

FileKind = Literal["site", "scenario", "profile"]


class CheckError(ValueError):
    """A file that does not validate; one line per error, each naming the file and field."""


def file_kind(raw: Any) -> FileKind | None:
    """What a parsed config file is, by its keys; None when it is none of them."""
    if not isinstance(raw, dict):
        return None
    if "duration" in raw or "site" in raw:
        return "scenario"
    if "points" in raw:
        return "profile"
    if "site_id" in raw:
        return "site"
    return None


def check_file(path: Path) -> str:
    """The one-line summary of a valid file; CheckError (naming file and fields) otherwise."""
    raw = read_yaml(path, CheckError)
    kind = file_kind(raw)
    if kind is None:
        raise CheckError(
            f"{path}: (top): not a site file (site_id), a scenario (duration, site) "
            "or a device profile (points)"
        )
    try:
        return _SUMMARIES[kind](path)
    except ValueError as e:  # SiteError, ScenarioError, ProfileError: already one a line
        raise CheckError(str(e)) from e


def _site(path: Path) -> str:
    from vpp.site import load_site

    site = load_site(path)
    return f"{path}: site {site.id}, {_devices(site.devices)}"


def _devices(devices: list[Any]) -> str:
    kinds = Counter(str(d.kind) for d in devices)
    parts = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    return f"{_count(len(devices), 'device')} ({parts})"


def _scenario(path: Path) -> str:
    from vpp.replay.scenario import load_scenario

    sc = load_scenario(path)
    cfg = sc.config
    return (
        f"{path}: scenario {sc.name}, site {sc.site.id} ({len(sc.site.devices)} devices), "
        f"{_span(sc.duration.total_seconds())} from {sc.start.isoformat()}, "
        f"strategy {sc.strategy}, {_count(len(cfg.events), 'event')}, "
        f"{_count(len(cfg.faults), 'fault')}"
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _span(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:g} d" if hours >= 24 and hours % 24 == 0 else f"{hours:g} h"


def _profile(path: Path) -> str:
    p = load_profile(path)
    return f"{path}: profile {p.name}, {p.kind} over {p.transport}, {len(p.points)} points"


_SUMMARIES = {"site": _site, "scenario": _scenario, "profile": _profile}
