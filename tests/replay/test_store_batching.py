"""The store's batched writes: closed telemetry windows go to disk together, one resolution
after they close; `batch()` is one transaction; a replay's group commit shows its rows to
other connections only at each `commit()`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.store.store import Store, StoreError

T0 = datetime(2026, 7, 15, tzinfo=UTC)


def _on_disk(path: Path, sql: str = "SELECT COUNT(*) FROM telemetry") -> int:
    """What another connection sees (committed rows only)."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def test_closed_windows_are_written_together_one_resolution_later(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path, telemetry_resolution_s=60)
    devices = [f"d{i}" for i in range(5)]
    # Every device every 5 s, as the agent's telemetry loop does, for 150 s.
    seen = []
    for s in range(0, 150, 5):
        for k, dev in enumerate(devices):
            store.add_telemetry(T0 + timedelta(seconds=s), dev, {"p": float(s + k), "q": -1.0})
        seen.append((s, _on_disk(path)))
    # Minute 0 closes at 60 s but is written only once a reading comes at 120 s (its end
    # plus one resolution): its ten windows in one go, with the two of minute 1 that the
    # reading at 120 s (d0) closed just before.
    assert [n for s, n in seen if s < 120] == [0] * 24
    assert dict(seen)[120] == 12
    assert dict(seen)[145] == 12
    rows = store.telemetry("d3", "p", T0, T0 + timedelta(minutes=3))
    # Reading flushes the open windows too; means are exact.
    assert [(t - T0).total_seconds() for t, _ in rows] == [0.0, 60.0, 120.0]
    assert rows[0][1] == pytest.approx(sum(range(0, 60, 5)) / 12 + 3)
    db_min, db_max, n = (
        sqlite3.connect(path)
        .execute("SELECT min, max, n FROM telemetry WHERE device_id='d3' AND point='p' ORDER BY ts")
        .fetchone()
    )
    assert (db_min, db_max, n) == (3.0, 58.0, 12)
    store.close()
    assert _on_disk(path) == 5 * 2 * 3


def test_batch_is_one_transaction_and_rolls_back_on_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    with store.batch():
        store.add_command(T0, "bat1", "power_setpoint_kw", 10.0, 10.0, clamped=False, ok=True)
        with store.batch():  # nested: joins the outer one
            store.add_command(T0, "bat1", "power_setpoint_kw", 20.0, 20.0, clamped=False, ok=True)
        assert _on_disk(path, "SELECT COUNT(*) FROM commands") == 0
    assert _on_disk(path, "SELECT COUNT(*) FROM commands") == 2
    with pytest.raises(RuntimeError), store.batch():
        store.add_command(T0, "bat1", "power_setpoint_kw", 30.0, 30.0, clamped=False, ok=True)
        raise RuntimeError("boom")
    assert [c["requested"] for c in store.commands()] == [10.0, 20.0]
    store.close()


def test_group_commit_shows_rows_at_each_commit_and_at_close(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    store.begin_group_commit()
    with pytest.raises(StoreError):
        store.begin_group_commit()
    store.add_command(T0, "ev1", "power_limit_kw", 7.0, 7.0, clamped=False, ok=True)
    store.add_telemetry(T0, "meter", {"import_power_kw": 100.0})
    assert len(store.commands()) == 1  # this connection sees its own writes at once
    assert _on_disk(path, "SELECT COUNT(*) FROM commands") == 0
    store.commit()
    assert _on_disk(path, "SELECT COUNT(*) FROM commands") == 1
    store.add_command(T0, "ev1", "power_limit_kw", 8.0, 8.0, clamped=False, ok=True)
    store.flush()  # a batch inside the group transaction
    assert _on_disk(path, "SELECT COUNT(*) FROM commands") == 1
    store.close()
    assert _on_disk(path, "SELECT COUNT(*) FROM commands") == 2
    assert _on_disk(path) == 1
