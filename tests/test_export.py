"""`vpp export` (issue 16 point 5): a store written through the real Store, exported by a
real `python -m vpp export` process; the energies are worked out by hand from the readings
written (constant powers over known minutes), so a wrong integration, time zone, gap or
table fails here."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.export.tables import TABLES
from vpp.store.store import Store

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ROOT / "config" / "sites" / "office.yaml"  # Asia/Shanghai, +08:00
T0 = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


def vpp(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "vpp", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def _event_payload() -> dict[str, object]:
    intervals = [
        {"start": (T0 + timedelta(minutes=15 * k)).isoformat(), "duration": "PT15M", "value": 20}
        for k in (1, 2)
    ]
    event = {"event_id": "e1", "modification": 0, "signal": "curtail_kw", "intervals": intervals}
    return {"event": event, "expected_kw": [20.0, 20.0], "reason": None}


def _report_payload() -> dict[str, object]:
    rows = [
        {
            "start": (T0 + timedelta(minutes=15 * k)).isoformat(),
            "duration": "PT15M",
            "requested_kw": 20.0,
            "baseline_kw": 130.0,
            "actual_kw": 100.0 + 10 * k,
            "delivered_kw": 30.0 - 10 * k,
            "ratio": (30.0 - 10 * k) / 20.0,
            "shortfall_kw": 0.0,
        }
        for k in (1, 2)
    ]
    details = {"requested_kwh": 10.0, "delivered_kwh": 7.5}
    return {
        "event_id": "e1",
        "signal": "curtail_kw",
        "delivered_ratio": 0.75,
        "baseline_method": "x_of_y",
        "comfort_violation_degC_h": 0.0,
        "details": details,
        "intervals": rows,
    }


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """One hour from T0: the meter at 100 kW read every 10 s; ev1 off for 15 min, at 22 kW
    from 00:15 to 00:45, then silent; pv1 at -30 kW read only every 120 s (longer than the
    store's 60-s window); zone-north at 24 then 25 degC; one event and two reports."""
    path = tmp_path / "site.sqlite"
    st = Store(path, telemetry_resolution_s=60)
    for s in range(0, 3600, 10):
        t = T0 + timedelta(seconds=s)
        st.add_telemetry(t, "meter", {"import_power_kw": 100.0})
        if s < 2700:
            st.add_telemetry(t, "ev1", {"power_kw": 22.0 if s >= 900 else 0.0})
        if s % 120 == 0:
            st.add_telemetry(t, "pv1", {"power_kw": -30.0})
        st.add_telemetry(t, "zone-north", {"zone_temp_c": 24.0 if s < 1800 else 25.0})
    st.save_event(T0 + timedelta(minutes=1), "e1", 0, _event_payload(), "opt_in")
    st.set_event_status(T0 + timedelta(minutes=46), "e1", "completed")
    st.add_report(T0 + timedelta(minutes=30, seconds=10), "e1", 0, _report_payload(), False)
    st.add_report(T0 + timedelta(minutes=45, seconds=10), "e1", 0, _report_payload(), True)
    st.close()
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _energy(rows: list[dict[str, str]], device: str) -> list[tuple[str, str, str, str]]:
    return [
        (r["interval_start"], r["energy_kwh"], r["mean_kw"], r["coverage"])
        for r in rows
        if r["device_id"] == device
    ]


def test_energy_per_device_and_interval_in_utc(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = vpp("--store", store, "--from", "2026-07-15T00:00Z", "--to", "2026-07-15T01:00Z",
            "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.csv" for n in TABLES)
    rows = _rows(out / "energy.csv")
    starts = [f"2026-07-15T00:{m:02d}:00+00:00" for m in (0, 15, 30, 45)]
    # 100 kW for 15 min = 25 kWh in each interval.
    assert _energy(rows, "meter") == [(s, "25.0", "100.0", "1.0") for s in starts]
    # Off, then 22 kW (5.5 kWh a quarter), then nothing stored: a gap, not zero.
    assert _energy(rows, "ev1") == [
        (starts[0], "0.0", "0.0", "1.0"),
        (starts[1], "5.5", "22.0", "1.0"),
        (starts[2], "5.5", "22.0", "1.0"),
        (starts[3], "", "", "0.0"),
    ]
    # Read every 120 s: each reading holds to the next, so the hour is covered.
    assert _energy(rows, "pv1") == [(s, "-7.5", "-30.0", "1.0") for s in starts]
    # A zone has no power point: not in the energy table.
    assert {r["device_id"] for r in rows} == {"meter", "ev1", "pv1"}
    assert {r["point"] for r in rows if r["device_id"] == "meter"} == {"import_power_kw"}


def test_site_time_zone_and_a_coarser_resolution(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # No offset: the site's zone (Shanghai, +08:00), so 08:00-09:00 there is T0 to T0 + 1 h.
    r = vpp("--store", store, "--site", OFFICE, "--from", "2026-07-15T08:00",
            "--to", "2026-07-15T09:00", "--resolution", "PT30M", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _rows(out / "energy.csv")
    assert _energy(rows, "meter") == [
        ("2026-07-15T08:00:00+08:00", "50.0", "100.0", "1.0"),
        ("2026-07-15T08:30:00+08:00", "50.0", "100.0", "1.0"),
    ]
    # 0 kW for 15 min and 22 kW for 15 min; then 15 min at 22 kW and 15 min without data.
    assert _energy(rows, "ev1") == [
        ("2026-07-15T08:00:00+08:00", "5.5", "11.0", "1.0"),
        ("2026-07-15T08:30:00+08:00", "5.5", "22.0", "0.5"),
    ]
    temps = [r for r in _rows(out / "telemetry.csv") if r["device_id"] == "zone-north"]
    assert [(r["interval_end"], r["mean"], r["min"], r["max"], r["readings"]) for r in temps] == [
        ("2026-07-15T08:30:00+08:00", "24.0", "24.0", "24.0", "180"),
        ("2026-07-15T09:00:00+08:00", "25.0", "25.0", "25.0", "180"),
    ]


def test_events_and_reports(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = vpp("--store", store, "--site", OFFICE, "--from", "2026-07-15", "--to", "2026-07-16",
            "--table", "events", "--table", "reports", "--table", "report_intervals",
            "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "events.csv",
        "report_intervals.csv",
        "reports.csv",
    ]
    (ev,) = _rows(out / "events.csv")
    assert (ev["event_id"], ev["status"], ev["signal"], ev["test"]) == (
        "e1",
        "completed",
        "curtail_kw",
        "false",
    )
    assert (ev["start"], ev["end"]) == ("2026-07-15T08:15:00+08:00", "2026-07-15T08:45:00+08:00")
    assert ev["received"] == "2026-07-15T08:01:00+08:00"
    assert json.loads(ev["payload"])["event"]["event_id"] == "e1"
    reports = _rows(out / "reports.csv")
    assert [(p["final"], p["delivered_ratio"], p["delivered_kwh"]) for p in reports] == [
        ("false", "0.75", "7.5"),
        ("true", "0.75", "7.5"),
    ]
    # Only the newest report's intervals (the final one), not both reports' rows.
    ivs = _rows(out / "report_intervals.csv")
    assert [(i["final"], i["interval_start"], i["delivered_kw"], i["ratio"]) for i in ivs] == [
        ("true", "2026-07-15T08:15:00+08:00", "20.0", "1.0"),
        ("true", "2026-07-15T08:30:00+08:00", "10.0", "0.5"),
    ]


def test_events_outside_the_range_are_left_out(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = vpp("--store", store, "--from", "2026-07-15T02:00Z", "--to", "2026-07-15T03:00Z",
            "--table", "events", "--table", "energy", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _rows(out / "events.csv") == []
    assert _rows(out / "energy.csv") == []


def test_parquet_holds_the_same_figures(store: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    r = vpp("--store", store, "--site", OFFICE, "--format", "parquet", "--table", "energy",
            "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    table = pq.read_table(out / "energy.parquet")
    assert str(table.schema.field("interval_start").type) == "timestamp[us, tz=Asia/Shanghai]"
    meter = [row for row in table.to_pylist() if row["device_id"] == "meter"]
    # The default range: the store's first window to after its last, in whole intervals.
    assert [(row["interval_start"].hour, row["interval_start"].minute) for row in meter] == [
        (8, 0),
        (8, 15),
        (8, 30),
        (8, 45),
    ]
    assert {row["energy_kwh"] for row in meter} == {25.0}
    ev1 = [row["energy_kwh"] for row in table.to_pylist() if row["device_id"] == "ev1"]
    assert ev1 == [0.0, 5.5, 5.5, None]


def test_one_table_to_stdout_and_the_store_is_not_written(store: Path) -> None:
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    r = vpp("--store", store, "--table", "energy", "--resolution", "PT1H", "--out", "-")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "interval_start,interval_end,device_id,point,energy_kwh,mean_kw,coverage"
    assert "2026-07-15T00:00:00+00:00,2026-07-15T01:00:00+00:00,meter,import_power_kw,100.0," in (
        "\n".join(lines)
    )
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--resolution", "PT0S"), ("--resolution",)),
        (("--resolution", "15min"), ("--resolution",)),
        (("--from", "2026-07-15T00:00"), ("--from", "offset")),
        (("--from", "yesterday"), ("--from",)),
        (("--from", "2026-07-15T01:00Z", "--to", "2026-07-15T00:00Z"), ("--to",)),
        (("--format", "xml"), ("--format",)),
        (("--table", "bogus"), ("--table",)),
        (("--out", "-"), ("--out", "--table")),
        (("--table", "energy", "--format", "parquet", "--out", "-"), ("--out",)),
        (("--site", "nope.yaml"), ("--site", "nope.yaml")),
    ],
)
def test_bad_options_are_one_line_naming_them(
    store: Path, args: tuple[str, ...], names: tuple[str, ...], tmp_path: Path
) -> None:
    r = (
        vpp("--store", store, *args, "--out", tmp_path)
        if "--out" not in args
        else vpp("--store", store, *args)
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    for n in names:
        assert n in line, line


@pytest.mark.parametrize("content", [None, b"not a database at all, just text\n"])
def test_a_missing_or_foreign_store_is_one_line(content: bytes | None, tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    if content is not None:
        path.write_bytes(content)
    r = vpp("--store", path, "--out", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: --store: ") and str(path) in line, line


def test_table_choices_are_the_builders() -> None:
    from vpp.cli import ExportTable

    assert [t.value for t in ExportTable] == list(TABLES)


def test_the_documented_backup_of_a_store_in_use_exports(store: Path, tmp_path: Path) -> None:
    """docs/operations.md, Backups: the online backup (the agent's Python one-liner) of a
    store that a Store still has open, with windows written after the fixture's, is a store
    `vpp export` reads, holding those windows too."""
    live = Store(store, telemetry_resolution_s=60)
    t = T0 + timedelta(hours=1)
    for s in range(0, 900, 10):
        live.add_telemetry(t + timedelta(seconds=s), "meter", {"import_power_kw": 60.0})
    live.flush()  # committed, in the WAL: a plain copy of the main file could miss it
    copy = tmp_path / "backup.sqlite"
    one_liner = (
        "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))"
    )
    r = subprocess.run([sys.executable, "-c", one_liner, str(store), str(copy)], timeout=60)
    live.close()
    assert r.returncode == 0
    out = vpp("--store", copy, "--table", "energy", "--from", "2026-07-15T01:00Z",
              "--to", "2026-07-15T01:15Z", "--out", "-")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert ",meter,import_power_kw,15.0,60.0,1.0" in out.stdout


def test_help_names_every_option() -> None:
    r = vpp("-h")
    assert r.returncode == 0, r.stderr
    for option in ("--store", "--site", "--from", "--to", "--resolution", "--format", "--table"):
        assert option in r.stdout, option
