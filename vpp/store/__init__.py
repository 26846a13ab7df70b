"""SQLite store: telemetry, commands, health, events, responses, reports."""
