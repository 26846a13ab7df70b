"""Writing export tables: CSV (the standard library; always there) or Parquet (pyarrow, the
`export` extra, imported only when asked for)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO

from vpp.export.tables import Cell, Table


class Format(StrEnum):
    """An export's file format (`--format`)."""

    csv = "csv"
    parquet = "parquet"


def _csv_cell(value: Cell) -> str | int | float:
    if value is None:
        return ""  # an empty field: no data (not 0)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_csv(table: Table, out: IO[str]) -> None:
    """A header row, then the rows; times in ISO 8601 with their offset, empty = no data."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(table.columns)
    for row in table.rows:
        w.writerow([_csv_cell(v) for v in row])


def write_parquet(table: Table, path: Path) -> None:
    """One Parquet file (times as timestamps with their zone, missing values as nulls)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {c: [row[i] for row in table.rows] for i, c in enumerate(table.columns)}
    arrays = {}
    for name, values in columns.items():
        arrays[name] = (
            pa.array(values)
            if any(v is not None for v in values)
            else pa.nulls(len(values), pa.string())
        )
    pq.write_table(pa.table(arrays) if arrays else pa.table({}), path)


def write(table: Table, out_dir: Path, fmt: Format) -> Path:
    """Write `table` as `out_dir/<name>.<fmt>`; returns the path."""
    path = out_dir / f"{table.name}.{fmt.value}"
    writers: dict[Format, Callable[[], None]] = {
        Format.csv: lambda: _write_csv_file(table, path),
        Format.parquet: lambda: write_parquet(table, path),
    }
    writers[fmt]()
    return path


def _write_csv_file(table: Table, path: Path) -> None:
    with path.open("w", newline="") as f:
        write_csv(table, f)
