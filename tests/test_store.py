"""The SQLite store: schema version, migrations, down-sampling, events survive reopening."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.store.store import SCHEMA_VERSION, Store, StoreError

T0 = datetime(2026, 7, 15, 8, 0, tzinfo=UTC)


def test_new_file_gets_current_schema_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "site.sqlite"
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    store.save_event(T0, "ev-1", 0, {"event_id": "ev-1"}, "received")
    store.close()
    again = Store(path)
    ev = again.event("ev-1")
    assert ev is not None and ev.status == "received" and ev.modification == 0
    assert [e.event_id for e in again.events({"received", "opt_in"})] == ["ev-1"]
    assert again.events({"completed"}) == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_telemetry_is_down_sampled_to_the_resolution(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.sqlite", telemetry_resolution_s=60)
    for s in range(0, 180, 5):  # 3 minutes of 5-s readings: 0, 5, ..., 175 kW
        store.add_telemetry(T0 + timedelta(seconds=s), "bat1", {"power_kw": float(s)})
    rows = store.telemetry("bat1", "power_kw", T0, T0 + timedelta(minutes=3))
    assert [r[0] for r in rows] == [T0 + timedelta(minutes=m) for m in range(3)]
    assert [r[1] for r in rows] == [27.5, 87.5, 147.5]  # mean of each 12-sample window
    assert store.table_counts()["telemetry"] == 3


def test_event_modification_replaces_and_status_updates(tmp_path: Path) -> None:
    store = Store(tmp_path / "e.sqlite")
    store.save_event(T0, "ev-1", 0, {"v": 0}, "received")
    store.save_event(T0 + timedelta(minutes=1), "ev-1", 2, {"v": 2}, "received")
    store.set_event_status(T0 + timedelta(minutes=2), "ev-1", "opt_in")
    ev = store.event("ev-1")
    assert ev is not None
    assert (ev.modification, ev.payload, ev.status) == (2, {"v": 2}, "opt_in")
    assert ev.received == T0 and ev.updated == T0 + timedelta(minutes=2)


def test_commands_responses_reports_and_health_are_kept_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.sqlite")
    store.add_command(T0, "bat1", "power_setpoint_kw", 300.0, 250.0, clamped=True, ok=True)
    store.add_command(T0, "ev1", "power_limit_kw", 5.0, None, clamped=False, ok=False, error="x")
    store.add_response(T0, {"event_id": "e", "modification": 0, "status": "received"})
    store.add_report(T0, "e", 0, {"delivered_ratio": 1.0}, final=True)
    store.add_health(T0, "bat1", "offline", "timeout")
    cmds = store.commands()
    assert [(c["device_id"], c["clamped"], c["ok"]) for c in cmds] == [
        ("bat1", 1, 1),
        ("ev1", 0, 0),
    ]
    assert store.responses("e")[0]["status"] == "received"
    assert store.reports("e", final_only=True) == [{"delivered_ratio": 1.0}]
    assert store.health_changes("bat1")[0][2:] == ("offline", "timeout")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.add_health(datetime(2026, 1, 1), "bat1", "online", "")


def test_a_schema_2_file_gains_the_outbox_and_keeps_its_rows_until_sent(tmp_path: Path) -> None:
    """A store written before the durable outbox (schema 2) is migrated on open; outgoing
    rows come back in the order queued, bytes as given, and `outgoing_sent` removes one."""
    from vpp.store.schema import MIGRATIONS

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    db.execute("INSERT INTO responses (ts, status, payload) VALUES (0, 'received', '{}')")
    db.commit()
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION >= 3
    assert len(store.responses()) == 1
    rows = [store.add_outgoing(T0, lane, f"t/{lane}", b"\x00{}", 1, False) for lane in (1, 0)]
    assert [(o.topic, o.payload, o.lane) for o in store.outgoing()] == [
        ("t/1", b"\x00{}", 1),
        ("t/0", b"\x00{}", 0),
    ]
    store.outgoing_sent(rows[0])
    store.close()
    assert [o.row for o in Store(path).outgoing()] == [rows[1]]


def _fill_days(store: Store, first: datetime, days: int) -> None:
    """Hourly telemetry of two points of two devices, a command and a health change a day."""
    for h in range(days * 24):
        t = first + timedelta(hours=h)
        for dev in ("bat1", "meter"):
            store.add_telemetry(t, dev, {"power_kw": 1.0, "soc_pct": 50.0})
        if h % 24 == 0:
            store.add_command(t, "bat1", "power_setpoint_kw", 5.0, 5.0, clamped=False, ok=True)
            store.add_health(t, "bat1", "ok", "read", None)
    store.flush()


def test_prune_deletes_old_rows_by_index_and_keeps_the_settlement_record(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.sqlite")
    first = T0 - timedelta(days=30)
    _fill_days(store, first, 30)
    store.add_health(first, "meter", "offline", "no answer", None)  # its only, oldest change
    store.save_event(first, "old-event", 0, {"event_id": "old-event"}, "completed")
    store.add_report(first, "old-event", 0, {"event_id": "old-event"}, False)
    before = T0 - timedelta(days=10)
    deleted = sum(store.prune_steps(before, chunk_days=3))
    rows = list(
        store.rows("SELECT device_id, point, min(ts), count(*) FROM telemetry GROUP BY 1, 2")
    )
    assert [(d, p) for d, p, _, _ in rows] == [
        ("bat1", "power_kw"), ("bat1", "soc_pct"), ("meter", "power_kw"), ("meter", "soc_pct")
    ]  # fmt: skip
    assert all(ts >= before.timestamp() and n == 10 * 24 for _, _, ts, n in rows), rows
    assert [c["ts"] >= before.timestamp() for c in store.commands()] == [True] * 10
    health = store.health_changes()
    assert ("meter", "offline") in [(d, s) for _, d, s, _ in health]  # latest of its device
    assert sum(1 for _, d, _, _ in health if d == "bat1") == 10
    assert deleted == 4 * 20 * 24 + 20 + 20
    assert store.event("old-event") is not None and store.reports("old-event")
    assert sum(store.prune_steps(before)) == 0  # nothing more to do


def test_prune_statements_search_an_index_not_the_table(tmp_path: Path) -> None:
    """A year of telemetry is tens of millions of rows: pruning must never scan it."""
    store = Store(tmp_path / "q.sqlite")
    plans = [
        "SELECT device_id, point FROM telemetry WHERE (device_id, point) > (?, ?)"
        " ORDER BY device_id, point LIMIT 1",
        "SELECT min(ts) FROM telemetry WHERE device_id=? AND point=?",
        "DELETE FROM telemetry WHERE device_id=? AND point=? AND ts<?",
        "DELETE FROM commands WHERE id IN"
        " (SELECT id FROM commands WHERE ts<? ORDER BY ts LIMIT 10000)",
    ]
    for sql in plans:
        args = (0,) * sql.count("?")
        detail = " | ".join(str(r[-1]) for r in store.rows(f"EXPLAIN QUERY PLAN {sql}", args))
        assert "SEARCH" in detail and "SCAN telemetry" not in detail, (sql, detail)
        assert "SCAN commands" not in detail, (sql, detail)
