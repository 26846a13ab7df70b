"""The five plots are written as valid PNGs of the documented size, deterministically."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.replay.helpers import fill, write_scenario
from tests.replay.test_summary import DAY0, SCENARIO, counterfactual_kw, fill_run
from vpp.replay.outputs import write_outputs
from vpp.replay.plots import PLOT_FILES, write_plots
from vpp.replay.scenario import load_scenario
from vpp.store.store import Store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def run(tmp_path: Path) -> tuple[Store, Store]:
    store = Store(":memory:")
    fill_run(store)
    fill(store, "bat1", "soc_pct", DAY0, 24 * 60, lambda t: 60.0)
    fill(store, "bat1", "power_kw", DAY0, 24 * 60, lambda t: -30.0)
    fill(store, "pv1", "power_kw", DAY0, 24 * 60, lambda t: -40.0)
    cf = Store(":memory:")
    fill(cf, "meter", "import_power_kw", DAY0, 24 * 60, counterfactual_kw)
    return store, cf


def test_plots_are_pngs_of_the_right_size(tmp_path: Path, run: tuple[Store, Store]) -> None:
    store, cf = run
    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    paths = write_plots(tmp_path / "out", store, sc, counterfactual=cf)
    assert [p.name for p in paths] == list(PLOT_FILES)
    sizes = {p.name: png_size(p.read_bytes()) for p in paths}
    assert sizes["site_import.png"] == (1200, 500)
    assert sizes["power_by_kind.png"] == (1200, 500)
    assert sizes["battery_soc.png"] == (1200, 500)
    assert sizes["ev_energy.png"] == (1200, 500)
    assert sizes["zone_temperatures.png"] == (1200, 720)  # 4 zones, 1.8 in each
    for p in paths:
        data = p.read_bytes()
        assert b"Software" not in data and data.endswith(b"IEND\xaeB`\x82")
    again = write_plots(tmp_path / "again", store, sc, counterfactual=cf)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def test_plots_without_data_still_draw(tmp_path: Path) -> None:
    sc = load_scenario(write_scenario(tmp_path, {**SCENARIO, "duration": "PT6H"}))
    paths = write_plots(tmp_path / "out", Store(":memory:"), sc)
    assert all(png_size(p.read_bytes())[0] == 1200 for p in paths)


def test_write_outputs_writes_summary_and_plots(tmp_path: Path, run: tuple[Store, Store]) -> None:
    store, cf = run
    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    summary = write_outputs(
        tmp_path / "out", store, sc, strategy="rules", wall_s=3.0, counterfactual=cf
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([*PLOT_FILES, "summary.json"])
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    assert summary["strategy"] == "rules" and summary["events"][0]["delivered_ratio"] is not None


def test_the_battery_line_breaks_while_the_battery_is_offline(tmp_path: Path) -> None:
    """Offline from 10:00 to 10:30 (no samples): the SoC line has a gap there, not a straight
    line from the last reading to the next."""
    from datetime import timedelta

    from vpp.replay import readings as rd

    store = Store(":memory:")
    fill(store, "bat1", "soc_pct", DAY0, 10 * 60, lambda t: 60.0)
    fill(store, "bat1", "soc_pct", DAY0 + timedelta(hours=10, minutes=30), 60, lambda t: 40.0)
    samples = rd.points(store, "bat1", "soc_pct", DAY0, DAY0 + timedelta(days=1))
    line = rd.gapped(samples, timedelta(minutes=3))
    assert len(line) == len(samples) + 1
    (hole,) = [(t, v) for t, v in line if v != v]  # NaN
    assert DAY0 + timedelta(hours=10) <= hole[0] < DAY0 + timedelta(hours=10, minutes=30)
    assert rd.gapped(samples[:600], timedelta(minutes=3)) == samples[:600]
