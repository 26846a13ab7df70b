"""Read-only access to a site's store for exports: opened with SQLite's `mode=ro`, so an
export never writes to (or migrates) the file a running agent is using, and works on a
backup copy too. Times are unix seconds (UTC), as stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpp.store.schema import MIGRATIONS


class StoreReadError(RuntimeError):
    """The file is missing, not a store, or of a newer schema than this vpp."""


@dataclass(frozen=True)
class TelemetryRow:
    """One stored window: its start (unix s), device, point, mean, min, max, readings."""

    ts: float
    device_id: str
    point: str
    mean: float
    min: float
    max: float
    n: int


@dataclass(frozen=True)
class EventRow:
    """An event as stored (the newest accepted modification), payload parsed."""

    event_id: str
    modification: int
    status: str
    received_ts: float
    updated_ts: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class ReportRow:
    """A report as stored (interim or final), payload parsed."""

    ts: float
    event_id: str
    modification: int
    final: bool
    payload: dict[str, Any]


class StoreReader:
    """A store file opened read-only. Use as a context manager (closes the connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreReadError(f"{self.path}: no such file")
        try:
            self._db = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True)
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as e:
            raise StoreReadError(f"{self.path}: not a vpp store ({e})") from None
        if version > len(MIGRATIONS):
            raise StoreReadError(
                f"{self.path}: schema version {version} is newer than this vpp ({len(MIGRATIONS)})"
            )
        if version < 1 or not {"telemetry", "events", "reports"} <= tables:
            raise StoreReadError(f"{self.path}: not a vpp store (no telemetry, events, reports)")

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        try:
            yield from self._db.execute(sql, args)
        except sqlite3.Error as e:
            raise StoreReadError(f"{self.path}: cannot read ({e})") from None

    def telemetry_span(self) -> tuple[float, float] | None:
        """The first and last window start in the file (unix s); None when it has none."""
        lo, hi = next(self._query("SELECT MIN(ts), MAX(ts) FROM telemetry"))
        return None if lo is None else (float(lo), float(hi))

    def telemetry(self, start: float, end: float) -> Iterator[TelemetryRow]:
        """Windows starting in `[start, end)` (and the one before `start` that may reach into
        it), by device, point and time."""
        for r in self._query(
            "SELECT ts, device_id, point, mean, min, max, n FROM telemetry"
            " WHERE ts>=? AND ts<? ORDER BY device_id, point, ts",
            (start - 3600.0, end),  # a window is at most 1 h (store.telemetry_resolution_s)
        ):
            yield TelemetryRow(float(r[0]), r[1], r[2], float(r[3]), float(r[4]), float(r[5]), r[6])

    def events(self) -> list[EventRow]:
        """Every stored event, oldest received first."""
        rows = self._query(
            "SELECT event_id, modification, status, received_ts, updated_ts, payload FROM events"
            " ORDER BY received_ts, event_id"
        )
        return [EventRow(r[0], r[1], r[2], r[3], r[4], _json(r[5])) for r in rows]

    def reports(self) -> list[ReportRow]:
        """Every stored report, in the order they were stored."""
        rows = self._query(
            "SELECT ts, event_id, modification, final, payload FROM reports ORDER BY id"
        )
        return [ReportRow(r[0], r[1], r[2], bool(r[3]), _json(r[4])) for r in rows]


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
