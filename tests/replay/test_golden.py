"""The bundled office replays to the outputs recorded before the seams refactor (summary but
`wall_s` and the oracle's later fields, reports and messages, byte for byte): see
tests/replay/golden_cases.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.replay.golden_cases import CASES, FILES, GOLDEN, run_case

# Added to summary.json after the recording (issue 12 point 7): the perfect-foresight
# oracle's figures, computed from the same store; the replay itself is what must not change.
ORACLE_KEYS = (
    "oracle_kw", "feasible_ratio", "min_feasible_ratio", "oracle_fraction",
    "oracle_full_request", "oracle_note",
)  # fmt: skip


def _summary(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    doc.pop("wall_s")
    for ev in doc["events"]:
        for k in ORACLE_KEYS:
            ev.pop(k, None)
    return doc


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", list(CASES))
async def test_replay_matches_the_recorded_outputs(tmp_path: Path, name: str) -> None:
    await run_case(name, tmp_path)
    got, want = tmp_path / "run", GOLDEN / name
    assert _summary(got / "summary.json") == _summary(want / "summary.json")
    for f in FILES[1:]:
        a, b = (got / f).read_bytes(), (want / f).read_bytes()
        assert len(a.splitlines()) >= 2, f
        assert a == b, f
