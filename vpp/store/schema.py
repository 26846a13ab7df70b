"""Schema of the store, as an ordered list of migrations (index + 1 = schema version)."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE telemetry (
        ts REAL NOT NULL,            -- start of the resolution window, unix seconds (UTC)
        device_id TEXT NOT NULL,
        point TEXT NOT NULL,
        mean REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (device_id, point, ts)
    );
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        device_id TEXT NOT NULL,
        point TEXT NOT NULL,
        requested REAL NOT NULL,
        written REAL,
        clamped INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        reason TEXT
    );
    CREATE INDEX commands_ts ON commands (ts);
    CREATE TABLE health (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        device_id TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        exception_code INTEGER
    );
    CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        modification INTEGER NOT NULL,
        payload TEXT NOT NULL,       -- the event as received (JSON)
        status TEXT NOT NULL,        -- received, opt_in, opt_out, cancelled, completed
        received_ts REAL NOT NULL,
        updated_ts REAL NOT NULL
    );
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event_id TEXT,
        modification INTEGER,
        status TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event_id TEXT NOT NULL,
        modification INTEGER NOT NULL,
        final INTEGER NOT NULL,
        payload TEXT NOT NULL
    );
    """,
    # 2: the baseline each event is controlled and reported against.
    """
    CREATE TABLE baselines (
        event_id TEXT NOT NULL,
        ts REAL NOT NULL,            -- start of the 15-min interval, unix seconds (UTC)
        kw REAL NOT NULL,
        method TEXT NOT NULL,
        PRIMARY KEY (event_id, ts)
    );
    """,
    # 3: the grid link's outbox: what must reach the grid, until the broker acknowledged it.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,      -- the order of queuing (sent in this order per lane)
        ts REAL NOT NULL,            -- when it was queued, unix seconds (UTC)
        lane INTEGER NOT NULL,       -- vpp.outbox.Lane: 0 answers and reports, 1 rejected
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,       -- the bytes as they go on the wire
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL
    );
    """,
    # 4: a grid link's own state (an OpenADR VEN's id, its map of the VTN's events, what it
    # reported), as JSON by link and key, so a restart neither loses nor repeats it.
    """
    CREATE TABLE link_state (
        link TEXT NOT NULL,          -- the link's grid: key, e.g. openadr3
        key TEXT NOT NULL,
        value TEXT NOT NULL,         -- JSON
        updated_ts REAL NOT NULL,
        PRIMARY KEY (link, key)
    );
    """,
]
