"""`vpp export` end to end: options → read-only store → tables → one file per table (or one
CSV table on stdout)."""

from __future__ import annotations

import sys
from pathlib import Path

from vpp.export.options import ExportError, default_power_points, export_range, site_facts
from vpp.export.tables import TABLES, build
from vpp.export.writers import Format, write, write_csv
from vpp.store.reader import StoreReader, StoreReadError


def run_export(
    *,
    store: Path | None,
    site_file: Path | None,
    start: str | None,
    end: str | None,
    resolution: str,
    fmt: str,
    tables: list[str] | None,
    out: Path,
) -> list[tuple[Path, int]]:
    """Write the tables; returns (file, rows) of each ("-" for stdout). ExportError names
    the option at fault."""
    names = tables or list(TABLES)
    to_stdout = str(out) == "-"
    if to_stdout and (len(names) != 1 or fmt != Format.csv):
        raise ExportError("--out: - (stdout) takes one --table in --format csv")
    site = site_facts(site_file) if site_file is not None else None
    path = store or (site.store if site is not None else None)
    if path is None:
        raise ExportError("--store: give the store file (or --site, whose store it is)")
    option = "--store" if store is not None else f"--site: {site_file}: store"
    try:
        reader = StoreReader(path)
    except StoreReadError as e:
        raise ExportError(f"{option}: {e}") from None
    with reader:
        r = export_range(
            start=start,
            end=end,
            resolution=resolution,
            span=reader.telemetry_span(),
            site=site,
            default_points=default_power_points(),
        )
        try:
            built = build(reader, r, names)
        except StoreReadError as e:
            raise ExportError(f"{option}: {e}") from None
    if to_stdout:
        write_csv(built[0], sys.stdout)
        return [(Path("-"), len(built[0].rows))]
    try:
        out.mkdir(parents=True, exist_ok=True)
        return [(write(t, out, Format(fmt)), len(t.rows)) for t in built]
    except OSError as e:
        raise ExportError(f"--out: cannot write to {out}: {e.strerror or e}") from None
