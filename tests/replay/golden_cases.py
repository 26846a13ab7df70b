"""Replays whose outputs were recorded before a refactor (tests/replay/golden/): the same
scenario must still give the same summary (but `wall_s`), reports and messages, byte for byte.

Record again only for a change that means to alter behaviour, and say so in its commit:
`python -m tests.replay.golden_cases --record`.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.replay.helpers import SCENARIOS, write_scenario
from vpp.replay.runner import replay
from vpp.replay.scenario import Scenario, load_scenario

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = ("summary.json", "reports.jsonl", "messages.jsonl")


def early_curtailment(tmp: Path) -> Scenario:
    """The summer day's curtailment moved to its first hour, cut to 40 minutes."""
    data = yaml.safe_load((SCENARIOS / "office-summer-day.yaml").read_text())
    del data["site"]
    data["events"][0].update(send_at="PT1M", start="PT5M", duration="PT30M")
    return load_scenario(write_scenario(tmp, data, "early.yaml")).with_duration("PT40M")


def intraday_cap(tmp: Path) -> Scenario:
    """The bundled intraday cap (battery offline mid-event, a deaf charger), noon to 15:15."""
    sc = load_scenario(SCENARIOS / "office-intraday-cap.yaml")
    return sc.with_duration("PT15H15M").from_time("PT12H")


def summer_rules(tmp: Path) -> Scenario:
    """The summer day, noon to its curtailment's end, under the rule strategy."""
    sc = load_scenario(SCENARIOS / "office-summer-day.yaml")
    return sc.with_duration("PT16H15M").from_time("PT12H")


CASES: dict[str, tuple[Callable[[Path], Scenario], str]] = {
    "early-curtailment": (early_curtailment, "optimiser"),
    "intraday-cap": (intraday_cap, "optimiser"),
    "summer-rules": (summer_rules, "rules"),
}


async def run_case(name: str, out: Path) -> None:
    """Replay case `name` (embedded broker, counterfactual alongside) into `out`."""
    make, strategy = CASES[name]
    sc = make(out)  # `out` exists: a test's tmp_path or a temporary directory
    await replay(sc, out / "run", strategy=strategy)


def record() -> None:
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run_case(name, Path(tmp)))
            dest = GOLDEN / name
            dest.mkdir(parents=True, exist_ok=True)
            for f in FILES:
                shutil.copy(Path(tmp) / "run" / f, dest / f)
        print("recorded", name)


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
    else:
        print(__doc__)
