"""The SQLite store. Everything that must survive a restart goes through here.

Writes of events, responses, commands and reports are committed before the call returns
("stored before acknowledged"). Telemetry is down-sampled in memory to the configured
resolution (mean, min, max per window). Closed windows are written together, in one
transaction, once a reading arrives a full resolution after the oldest of them closed (so a
site's windows go to disk about once per resolution, not once per device and point), and
every open and closed window is written on `flush()`, which every read of telemetry calls.
`batch()` groups any writes into one transaction (bulk loads such as generated history).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vpp.store.schema import MIGRATIONS

SCHEMA_VERSION = len(MIGRATIONS)


def _ts(t: datetime) -> float:
    if t.tzinfo is None:
        raise ValueError("store timestamps must be timezone-aware")
    return t.timestamp()


@dataclass(slots=True)
class _Window:
    start: float
    total: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")
    n: int = 0


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored: its latest accepted modification and status."""

    event_id: str
    modification: int
    payload: dict[str, Any]
    status: str
    received: datetime
    updated: datetime


@dataclass(frozen=True)
class StoredOutgoing:
    """A message for the grid the broker has not acknowledged yet (the link's outbox)."""

    row: int
    lane: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class StoreError(RuntimeError):
    """The database is unusable (newer schema than this code, or corrupt)."""


class Store:
    """One SQLite file per site. Not thread-safe: use it from the agent's event loop."""

    def __init__(self, path: str | Path, *, telemetry_resolution_s: float = 60.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._resolution = telemetry_resolution_s
        self._windows: dict[str, dict[str, _Window]] = {}  # device id → point → window
        # Windows that closed and are not written yet; written once a reading arrives at or
        # after `_closed_due` (unix s), or on flush().
        self._closed: list[tuple[str, str, _Window]] = []
        self._closed_due = float("inf")
        self._batch_depth = 0
        self._grouped = False
        self._abandoned = False
        self._closed_file = False
        self.migrate()

    # -- schema ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply the migrations this file has not seen, each in one transaction."""
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this vpp ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN")
            try:
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version}")
                self._db.execute("COMMIT")
            except Exception:
                self._db.execute("ROLLBACK")
                raise

    def abandon(self) -> None:
        """From now on `close()` closes the file as a killed live agent leaves it (a replay's
        `agent_kill_at`, whose agent tasks end while they may still write): live, every
        statement commits on its own, so what was written stays (the group transaction, a
        replay's speed-up only, is committed); the telemetry windows still in memory are
        lost."""
        self._abandoned = True

    def close(self) -> None:
        """Flush telemetry and close the file (once; after `abandon()`, without the flush)."""
        if self._closed_file:
            return
        self._closed_file = True
        if self._abandoned:
            if self._grouped:
                self._grouped = False
                self._db.execute("COMMIT")
            self._db.close()
            return
        self.flush()
        if self._grouped:
            self._grouped = False
            self._batch_depth = 0
            self._db.execute("COMMIT")
        self._db.close()

    # -- group commit (replay) ------------------------------------------------------------

    def begin_group_commit(self) -> None:
        """Keep one transaction open from now on; `commit()` and `close()` commit it.

        For replays, where a simulated day writes tens of thousands of commands and windows
        that would each be a transaction of their own. Readers on this store see everything
        at once; other connections see it at each commit. Nothing is synced to disk
        (`synchronous=OFF`). Not for a live site: a crash loses what was written since the
        last commit, and "stored before acknowledged" no longer holds.
        """
        if self._batch_depth:
            raise StoreError("begin_group_commit inside a transaction")
        # No fsync either (at WAL checkpoints, with NORMAL): a replay is rerun, not recovered.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("BEGIN")
        self._batch_depth = 1
        self._grouped = True

    def commit(self) -> None:
        """Commit the group transaction and open the next one (no-op without one)."""
        if self._grouped:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")

    # -- telemetry ------------------------------------------------------------------------

    def add_telemetry(self, ts: datetime, device_id: str, values: Mapping[str, float]) -> None:
        """Add one reading; it is averaged into its resolution window."""
        t = _ts(ts)
        start = t - (t % self._resolution)
        windows = self._windows.get(device_id)
        if windows is None:
            windows = self._windows[device_id] = {}
        for point, value in values.items():
            w = windows.get(point)
            if w is None or w.start != start:
                if w is not None:
                    if not self._closed:
                        # Due one resolution after this window's end: by then every device
                        # polled at least once per resolution has closed its window too.
                        self._closed_due = w.start + 2 * self._resolution
                    self._closed.append((device_id, point, w))
                w = windows[point] = _Window(start)
            # Inline (this runs for every point of every reading); same as min() and max().
            v = float(value)
            w.total += v
            if v < w.lo:
                w.lo = v
            if v > w.hi:
                w.hi = v
            w.n += 1
        if t >= self._closed_due:
            self._write_closed()

    def flush(self) -> None:
        """Write every closed and open telemetry window (a partial window is written, then
        replaced)."""
        with self.batch():
            self._write_closed()
            self._write_windows(
                [(d, p, w) for d, points in self._windows.items() for p, w in points.items()]
            )

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run the writes inside the block in one transaction (committed at its end, rolled
        back if it raises). Nested blocks join the outer one."""
        if self._batch_depth:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
            return
        self._db.execute("BEGIN")
        self._batch_depth = 1
        try:
            yield
        except BaseException:
            self._batch_depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._batch_depth = 0
        self._db.execute("COMMIT")

    def _write_closed(self) -> None:
        closed, self._closed = self._closed, []
        self._closed_due = float("inf")
        self._write_windows(closed)

    def _write_windows(self, items: list[tuple[str, str, _Window]]) -> None:
        rows = [
            (w.start, dev, point, w.total / w.n, w.lo, w.hi, w.n) for dev, point, w in items if w.n
        ]
        if rows:
            # One transaction: in autocommit mode each row would be its own.
            with self.batch():
                self._db.executemany(
                    "INSERT OR REPLACE INTO telemetry VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )

    def telemetry(
        self, device_id: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Window means of one point in [start, end), oldest first."""
        self.flush()
        rows = self._db.execute(
            "SELECT ts, mean FROM telemetry WHERE device_id=? AND point=? AND ts>=? AND ts<?"
            " ORDER BY ts",
            (device_id, point, _ts(start), _ts(end)),
        ).fetchall()
        return [(datetime.fromtimestamp(ts, UTC), v) for ts, v in rows]

    # -- commands and health --------------------------------------------------------------

    def add_command(
        self,
        ts: datetime,
        device_id: str,
        point: str,
        requested: float,
        written: float | None,
        *,
        clamped: bool,
        ok: bool,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record a setpoint write (or its failure)."""
        self._db.execute(
            "INSERT INTO commands (ts, device_id, point, requested, written, clamped, ok, error,"
            " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_ts(ts), device_id, point, requested, written, int(clamped), int(ok), error, reason),
        )

    def commands(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """Stored commands, oldest first."""
        cols = ("ts", "device_id", "point", "requested", "written", "clamped", "ok", "error")
        q = f"SELECT {', '.join(cols)}, reason FROM commands"
        args: tuple[Any, ...] = ()
        if device_id is not None:
            q += " WHERE device_id=?"
            args = (device_id,)
        names = (*cols, "reason")
        return [
            dict(zip(names, r, strict=True)) for r in self._db.execute(q + " ORDER BY id", args)
        ]

    def add_health(
        self, ts: datetime, device_id: str, state: str, reason: str, code: int | None = None
    ) -> None:
        """Record a change of a device's health."""
        self._db.execute(
            "INSERT INTO health (ts, device_id, state, reason, exception_code) VALUES (?,?,?,?,?)",
            (_ts(ts), device_id, state, reason, code),
        )

    def health_changes(self, device_id: str | None = None) -> list[tuple[float, str, str, str]]:
        q = "SELECT ts, device_id, state, reason FROM health"
        args: tuple[Any, ...] = ()
        if device_id is not None:
            q += " WHERE device_id=?"
            args = (device_id,)
        return list(self._db.execute(q + " ORDER BY id", args))

    # -- events, responses, reports -------------------------------------------------------

    def save_event(
        self, ts: datetime, event_id: str, modification: int, payload: dict[str, Any], status: str
    ) -> None:
        """Insert or replace an event (its newest accepted modification), committed now."""
        t = _ts(ts)
        self._db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO UPDATE SET"
            " modification=excluded.modification, payload=excluded.payload,"
            " status=excluded.status, updated_ts=excluded.updated_ts",
            (event_id, modification, json.dumps(payload, sort_keys=True), status, t, t),
        )

    def set_event_status(self, ts: datetime, event_id: str, status: str) -> None:
        self._db.execute(
            "UPDATE events SET status=?, updated_ts=? WHERE event_id=?", (status, _ts(ts), event_id)
        )

    def event(self, event_id: str) -> StoredEvent | None:
        row = self._db.execute(
            "SELECT event_id, modification, payload, status, received_ts, updated_ts FROM events"
            " WHERE event_id=?",
            (event_id,),
        ).fetchone()
        return _event(row) if row else None

    def events(self, statuses: Iterable[str] | None = None) -> list[StoredEvent]:
        """Stored events, oldest first; only those with the given statuses if given."""
        rows = self._db.execute(
            "SELECT event_id, modification, payload, status, received_ts, updated_ts FROM events"
            " ORDER BY received_ts, event_id"
        ).fetchall()
        wanted = set(statuses) if statuses is not None else None
        return [_event(r) for r in rows if wanted is None or r[3] in wanted]

    def add_response(self, ts: datetime, payload: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO responses (ts, event_id, modification, status, payload)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                _ts(ts),
                payload.get("event_id"),
                payload.get("modification"),
                payload["status"],
                json.dumps(payload, sort_keys=True),
            ),
        )

    def responses(self, event_id: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT payload FROM responses"
        args: tuple[Any, ...] = ()
        if event_id is not None:
            q, args = q + " WHERE event_id=?", (event_id,)
        return [json.loads(r[0]) for r in self._db.execute(q + " ORDER BY id", args)]

    def add_report(
        self, ts: datetime, event_id: str, modification: int, payload: dict[str, Any], final: bool
    ) -> None:
        self._db.execute(
            "INSERT INTO reports (ts, event_id, modification, final, payload) VALUES (?,?,?,?,?)",
            (_ts(ts), event_id, modification, int(final), json.dumps(payload, sort_keys=True)),
        )

    def reports(self, event_id: str, *, final_only: bool = False) -> list[dict[str, Any]]:
        q = "SELECT payload FROM reports WHERE event_id=?"
        if final_only:
            q += " AND final=1"
        return [json.loads(r[0]) for r in self._db.execute(q + " ORDER BY id", (event_id,))]

    # -- the grid link's outbox -----------------------------------------------------------

    def add_outgoing(
        self, ts: datetime, lane: int, topic: str, payload: bytes, qos: int, retain: bool
    ) -> int:
        """Keep a message for the grid until `outgoing_sent(row)`; returns its row."""
        cur = self._db.execute(
            "INSERT INTO outbox (ts, lane, topic, payload, qos, retain) VALUES (?,?,?,?,?,?)",
            (_ts(ts), lane, topic, payload, qos, int(retain)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def outgoing_sent(self, row: int) -> None:
        """The broker acknowledged the message of `row`: it is not sent again."""
        self._db.execute("DELETE FROM outbox WHERE id=?", (row,))

    def outgoing(self) -> list[StoredOutgoing]:
        """Messages not yet acknowledged, in the order they were queued."""
        rows = self._db.execute(
            "SELECT id, lane, topic, payload, qos, retain FROM outbox ORDER BY id"
        ).fetchall()
        return [StoredOutgoing(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5])) for r in rows]

    def save_baseline(self, event_id: str, method: str, profile: dict[datetime, float]) -> None:
        """Replace an event's baseline profile (interval start → kW)."""
        self._db.execute("DELETE FROM baselines WHERE event_id=?", (event_id,))
        self._db.executemany(
            "INSERT INTO baselines VALUES (?, ?, ?, ?)",
            [(event_id, _ts(t), kw, method) for t, kw in sorted(profile.items())],
        )

    def baseline(self, event_id: str) -> tuple[str, dict[datetime, float]]:
        """An event's stored baseline: (method, interval start → kW); ("", {}) if none."""
        rows = self._db.execute(
            "SELECT ts, kw, method FROM baselines WHERE event_id=? ORDER BY ts", (event_id,)
        ).fetchall()
        method = rows[0][2] if rows else ""
        return method, {datetime.fromtimestamp(ts, UTC): kw for ts, kw, _ in rows}

    # -- a grid link's own state --------------------------------------------------------

    def put_link_state(self, ts: datetime, link: str, key: str, value: Any) -> None:
        """Keep `value` (JSON data) under the link's `key`, replacing what was there."""
        self._db.execute(
            "INSERT OR REPLACE INTO link_state (link, key, value, updated_ts) VALUES (?,?,?,?)",
            (link, key, json.dumps(value, sort_keys=True), _ts(ts)),
        )

    def link_state(self, link: str) -> dict[str, Any]:
        """Every key the link kept, with its value."""
        rows = self._db.execute(
            "SELECT key, value FROM link_state WHERE link=? ORDER BY key", (link,)
        ).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def prune_steps(self, before: datetime, *, chunk_days: float = 7.0) -> Iterator[int]:
        """Delete telemetry, commands and health changes older than `before`, one piece at
        a time: each step deletes a point's rows over at most `chunk_days` (index ranges,
        no table scan) and yields how many rows went, so a caller on the event loop can
        yield between pieces of a large first prune. Each device's latest health change is
        kept, however old: it is still the device's state."""
        cut = before.timestamp()
        span = chunk_days * 86400.0
        pair: tuple[str, str] | None = ("", "")
        while pair is not None:
            row = self._db.execute(
                "SELECT device_id, point FROM telemetry WHERE (device_id, point) > (?, ?)"
                " ORDER BY device_id, point LIMIT 1",
                pair,
            ).fetchone()
            pair = None if row is None else (str(row[0]), str(row[1]))
            if pair is None:
                break
            (oldest,) = self._db.execute(
                "SELECT min(ts) FROM telemetry WHERE device_id=? AND point=?", pair
            ).fetchone()
            while oldest is not None and oldest < cut:
                upto = min(cut, float(oldest) + span)
                n = self._db.execute(
                    "DELETE FROM telemetry WHERE device_id=? AND point=? AND ts<?", (*pair, upto)
                ).rowcount
                yield n
                oldest = upto if upto < cut else None
        while True:
            n = self._db.execute(
                "DELETE FROM commands WHERE id IN"
                " (SELECT id FROM commands WHERE ts<? ORDER BY ts LIMIT 10000)",
                (cut,),
            ).rowcount
            yield n
            if n < 10000:
                break
        yield self._db.execute(
            "DELETE FROM health WHERE ts<? AND id NOT IN"
            " (SELECT max(id) FROM health GROUP BY device_id)",
            (cut,),
        ).rowcount

    def table_counts(self) -> dict[str, int]:
        """Rows per table (for tests and `vpp` status output)."""
        self.flush()
        names = [
            *("telemetry", "commands", "health", "events", "responses", "reports", "baselines"),
            "outbox",
            "link_state",
        ]
        return {n: int(self._db.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0]) for n in names}

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """Read-only access for reports and tests."""
        self.flush()
        yield from self._db.execute(sql, args)


def _event(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(
        event_id=row[0],
        modification=row[1],
        payload=json.loads(row[2]),
        status=row[3],
        received=datetime.fromtimestamp(row[4], UTC),
        updated=datetime.fromtimestamp(row[5], UTC),
    )
