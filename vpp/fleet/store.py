"""The aggregator's SQLite store: district events (their contract state), each event's run
(legs, allocations), every allocation made, the sites' answers and reports, the answers and
reports sent upward, and when each site last ended an event (its rest time).

Every write commits at once (WAL): an aggregator killed at any point restarts from what was
written. A schema of its own (`user_version` counts the migrations)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from vpp.fleet.run import EventRun
from vpp.grid.ledger import EventState

_MIGRATIONS = [
    """
    CREATE TABLE district_events (event_id TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE runs (event_id TEXT PRIMARY KEY, run TEXT NOT NULL);
    CREATE TABLE allocations (
        event_id TEXT NOT NULL, revision INTEGER NOT NULL, ts TEXT NOT NULL,
        site_id TEXT NOT NULL, values_kw TEXT NOT NULL, why TEXT,
        PRIMARY KEY (event_id, revision, site_id)
    );
    CREATE TABLE site_responses (
        id INTEGER PRIMARY KEY, site_id TEXT NOT NULL, event_id TEXT, modification INTEGER,
        status TEXT NOT NULL, payload TEXT NOT NULL
    );
    CREATE TABLE site_reports (
        event_id TEXT NOT NULL, site_id TEXT NOT NULL, payload TEXT NOT NULL,
        PRIMARY KEY (event_id, site_id)
    );
    CREATE TABLE sent_up (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL, event_id TEXT, status TEXT,
        payload TEXT NOT NULL
    );
    CREATE TABLE site_rest (site_id TEXT PRIMARY KEY, last_end TEXT NOT NULL)
    """,
]


class FleetStore:
    """One SQLite file per district. Use it from the aggregator's event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # as the site's store: no fsync per row
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        for n in range(version, len(_MIGRATIONS)):
            self._db.execute("BEGIN")
            for statement in _MIGRATIONS[n].split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {n + 1}")
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def rows(self, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
        """Rows of a query (tests, exports)."""
        yield from self._db.execute(sql, args)

    # -- district events ------------------------------------------------------------------

    def put_event(self, state: EventState) -> None:
        """Store the contract state of a district event."""
        self._db.execute(
            "INSERT OR REPLACE INTO district_events VALUES (?, ?)",
            (state.event_id, json.dumps(state.to_record())),
        )

    def drop_event(self, event_id: str) -> None:
        """Forget a district event (one that could not be handled)."""
        self._db.execute("DELETE FROM district_events WHERE event_id = ?", (event_id,))

    def events(self) -> dict[str, EventState]:
        """Every stored district event's state, by event id."""
        return {
            eid: EventState.from_record(json.loads(rec))
            for eid, rec in self._db.execute("SELECT event_id, record FROM district_events")
        }

    # -- runs and allocations -------------------------------------------------------------

    def put_run(self, run: EventRun) -> None:
        """Store how far a district event has gone."""
        self._db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?)", (run.event_id, run.model_dump_json())
        )

    def runs(self) -> dict[str, EventRun]:
        """Every stored run, by event id, each leg with the site's latest answer to its
        latest event message (answers are rows of their own: a run is not rewritten for
        each of a thousand answers)."""
        runs = {
            eid: EventRun.model_validate_json(text)
            for eid, text in self._db.execute("SELECT event_id, run FROM runs")
        }
        for eid, site, mod, status in self._db.execute(
            "SELECT event_id, site_id, modification, status FROM site_responses ORDER BY id"
        ):
            leg = runs[eid].legs.get(site) if eid in runs else None
            if leg is not None and mod in (None, leg.modification):
                leg.status = status
        return runs

    def put_allocation(self, run: EventRun, now: datetime, why: str | None) -> None:
        """Record the run's current allocation (its revision) per site."""
        self._db.executemany(
            "INSERT OR REPLACE INTO allocations VALUES (?, ?, ?, ?, ?, ?)",
            [
                (run.event_id, run.revision, now.isoformat(), s, json.dumps(leg.values), why)
                for s, leg in run.legs.items()
            ],
        )

    # -- messages -------------------------------------------------------------------------

    def put_site_response(self, site_id: str, payload: dict[str, Any]) -> None:
        """A site's answer, as it came."""
        self._db.execute(
            "INSERT INTO site_responses (site_id, event_id, modification, status, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                site_id,
                payload.get("event_id"),
                payload.get("modification"),
                payload["status"],
                json.dumps(payload),
            ),
        )

    def put_site_report(self, site_id: str, event_id: str, payload: dict[str, Any]) -> None:
        """A site's latest report of an event."""
        self._db.execute(
            "INSERT OR REPLACE INTO site_reports VALUES (?, ?, ?)",
            (event_id, site_id, json.dumps(payload)),
        )

    def site_reports(self, event_id: str) -> dict[str, dict[str, Any]]:
        """The sites' latest reports of an event, by site id."""
        return {
            site: json.loads(p)
            for site, p in self._db.execute(
                "SELECT site_id, payload FROM site_reports WHERE event_id = ?", (event_id,)
            )
        }

    def put_sent(self, kind: str, event_id: str | None, status: str | None, payload: Any) -> None:
        """An answer or report sent upward."""
        self._db.execute(
            "INSERT INTO sent_up (kind, event_id, status, payload) VALUES (?, ?, ?, ?)",
            (kind, event_id, status, json.dumps(payload)),
        )

    # -- rest times -----------------------------------------------------------------------

    def put_rest(self, site_id: str, last_end: datetime) -> None:
        """When the site's last district event ended."""
        self._db.execute(
            "INSERT OR REPLACE INTO site_rest VALUES (?, ?)", (site_id, last_end.isoformat())
        )

    def rests(self) -> dict[str, datetime]:
        """When each site's last district event ended."""
        return {
            s: datetime.fromisoformat(t)
            for s, t in self._db.execute("SELECT site_id, last_end FROM site_rest")
        }
