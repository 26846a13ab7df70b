"""The five plots are written as valid PNGs of the documented size, deterministically."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.replay.helpers import fill, write_scenario
from tests.replay.test_summary import DAY0, SCENARIO, counterfactual_kw, fill_run
from vpp.replay.intervals import SERIES_FILE
from vpp.replay.outputs import write_outputs
from vpp.replay.plots import PLOT_FILES, session_labels, write_plots
from vpp.replay.scenario import load_scenario
from vpp.replay.site_plot import result_line
from vpp.replay.summary import event_baselines, event_reports
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
    assert names == sorted([*PLOT_FILES, "summary.json", "series.csv"])
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


def _pixel_rows(path: Path) -> Any:
    from matplotlib import image

    return image.imread(str(path))


def test_site_import_states_the_result_as_the_summary(
    tmp_path: Path, run: tuple[Store, Store]
) -> None:
    """The store of test_summary: 120 kW asked 14:00-16:00; 60 kW delivered in the first
    quarter hour (340 against 400), 120 kW after: 112.5 kW, 94 %, worst 14:00 at 50 %."""
    store, cf = run
    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    reports = event_reports(store, sc, cf)
    line = result_line(reports["cut"], sc.tz)
    assert line == (
        "cut 14:00-16:00: asked 120 kW, delivered 112 kW (94%), worst interval 14:00 50%"
    )
    summary = write_outputs(tmp_path / "out", store, sc, counterfactual=cf, plots=False)
    ev = summary["events"][0]
    assert (ev["requested_kw"], ev["delivered_ratio"], ev["min_interval_ratio"]) == (
        120.0,
        0.938,
        0.5,
    )


def test_series_csv_holds_the_15_min_figures(tmp_path: Path, run: tuple[Store, Store]) -> None:
    store, cf = run
    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    write_outputs(tmp_path / "out", store, sc, counterfactual=cf, plots=False)
    with (tmp_path / "out" / SERIES_FILE).open() as f:
        rows = {r["interval_start"]: r for r in csv.DictReader(f)}
    assert len(rows) == 96
    quiet = rows["2026-07-15T10:00:00+08:00"]
    assert (quiet["site_import_kw"], quiet["counterfactual_kw"], quiet["event_id"]) == (
        "400.0",
        "400.0",
        "",
    )
    first = rows["2026-07-15T14:00:00+08:00"]
    figures = ("site_import_kw", "counterfactual_kw", "baseline_kw", "target_kw")
    assert [first[k] for k in figures] == ["340.0", "400.0", "400.0", "280.0"]
    assert [first[k] for k in ("event_id", "requested_kw", "delivered_kw", "ratio")] == [
        "cut",
        "120.0",
        "60.0",
        "0.5",
    ]
    # Battery -30 and PV -40 kW: the base load is the import less them.
    assert (first["battery_kw"], first["pv_kw"], first["base_load_kw"]) == (
        "-30.0",
        "-40.0",
        "410.0",
    )
    assert rows["2026-07-15T02:00:00+08:00"]["site_import_kw"] == "-20.0"  # exporting
    assert rows["2026-07-15T16:00:00+08:00"]["event_id"] == ""


def test_power_by_kind_keeps_the_stack_colour_in_the_event(
    tmp_path: Path, run: tuple[Store, Store]
) -> None:
    """A pixel of the base load inside the event (15:00) has the colour of one outside it
    (10:00): the event is edged and banded at the top, not laid over the stack."""
    store, cf = run
    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    (path,) = [p for p in write_plots(tmp_path / "out", store, sc, counterfactual=cf) if
               p.name == "power_by_kind.png"]  # fmt: skip
    img = _pixel_rows(path)
    height, width = img.shape[:2]

    # Default subplot box: x from 12.5 % to 90 %, y from 11 % to 88 % (image rows top down).
    def px(hour: float, frac_y: float) -> Any:
        x = int(width * (0.125 + 0.775 * hour / 24))
        y = int(height * (1 - (0.11 + 0.77 * frac_y)))
        return img[y, x, :3]

    inside, outside = px(15.0, 0.35), px(10.0, 0.35)
    assert (abs(inside - outside) < 0.02).all(), (inside, outside)
    assert abs(float(inside[0]) - float(inside[2])) < 0.05  # grey, not the event's red


def test_ev_bars_are_sessions(tmp_path: Path) -> None:
    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    sessions = [s for s in sc.sessions() if s.departure <= sc.end]
    assert session_labels(sessions, sc) == [
        "ev3 #1\n01:00-03:00",
        "ev1 #1\n08:00-17:00",
        "ev2 #1\n09:00-18:00",
    ]
    week = load_scenario(write_scenario(tmp_path, {**SCENARIO, "duration": "P2D"}, "w.yaml"))
    labels = session_labels([s for s in week.sessions() if s.charger == "ev3"], week)
    assert labels[0] == "ev3 #1\nWed 01:00-03:00"


def _filled(kw: float) -> tuple[Store, Store]:
    store = Store(":memory:")
    fill_run(store)
    cf = Store(":memory:")
    fill(cf, "meter", "import_power_kw", DAY0, 24 * 60, lambda t: kw)
    return store, cf


def test_compare_draws_both_runs_on_one_scale(tmp_path: Path) -> None:
    """Two runs whose counterfactuals differ (400 and 900 kW): after the comparison each
    run's site import plot is the one drawn with the shared range, which differs from the
    one drawn alone for the run with the smaller range."""
    from vpp.replay.compare import COMPARE_FILE, write_comparison
    from vpp.replay.plotdata import PlotData
    from vpp.replay.runner import COUNTERFACTUAL, STORE
    from vpp.replay.site_plot import plot_site_import, shared_range, site_import_range

    sc = load_scenario(write_scenario(tmp_path, SCENARIO))
    dirs = []
    for name, kw in (("a", 400.0), ("b", 900.0)):
        out = tmp_path / name
        (out / COUNTERFACTUAL).mkdir(parents=True)
        store, cf = _filled(kw)
        store._db.execute(f"VACUUM INTO '{out / STORE}'")
        cf._db.execute(f"VACUUM INTO '{out / COUNTERFACTUAL / STORE}'")
        dirs.append(out)

    def data(out: Path) -> PlotData:
        st, cf = Store(out / STORE), Store(out / COUNTERFACTUAL / STORE)
        return PlotData(st, sc, cf, event_baselines(st, sc, cf), event_reports(st, sc, cf))

    alone = plot_site_import(data(dirs[0]), dirs[0] / "site_import.png").read_bytes()
    compared = write_comparison(sc, [("a", dirs[0]), ("b", dirs[1])])
    assert [p.name for p in compared] == [COMPARE_FILE, COMPARE_FILE]
    assert compared[0].read_bytes() == compared[1].read_bytes()
    assert png_size(compared[0].read_bytes()) == (1200, 500)

    da, db = data(dirs[0]), data(dirs[1])
    shared = shared_range([da, db])
    assert shared == (
        min(site_import_range(da)[0], site_import_range(db)[0]),
        site_import_range(db)[1],
    )
    assert site_import_range(da)[1] < shared[1]  # a alone would be drawn on a smaller scale
    da.ylim = shared
    redrawn = plot_site_import(da, tmp_path / "again.png").read_bytes()
    assert (dirs[0] / "site_import.png").read_bytes() == redrawn
    assert redrawn != alone
