"""Write the JSON Schemas of the contract's messages to docs/schemas/*.json, and of this
site's extended messages (site setting `grid.extensions: true`) to
docs/schemas/extended/*.json.

`python -m vpp.grid.schemas` (or `--check` to fail when the files are out of date).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from vpp.grid.messages import (
    Event,
    ExtendedReport,
    ExtendedStatus,
    ExtendedTelemetry,
    Report,
    Response,
    Status,
    Telemetry,
)
from vpp.grid.offers import Offer, OfferRequest

MODELS: dict[str, type[BaseModel]] = {
    "event": Event,
    "response": Response,
    "report": Report,
    "status": Status,
    "telemetry": Telemetry,
    "offer": Offer,
    "offer_request": OfferRequest,
}
"""File stem → model; `event` and `offer_request` are what a site accepts, the others what it
sends: exactly the contract's fields (what a grid operator validates against)."""

EXTENDED: dict[str, type[BaseModel]] = {
    "extended/report": ExtendedReport,
    "extended/status": ExtendedStatus,
    "extended/telemetry": ExtendedTelemetry,
}
"""File stem → model of the messages a site with `grid.extensions: true` sends."""

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def generate() -> dict[str, str]:
    """File name (relative to the schema directory) → JSON Schema text (draft 2020-12) of
    each message."""
    out: dict[str, str] = {}
    for stem, model in {**MODELS, **EXTENDED}.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:vpp:grid:v1:{stem.replace('/', ':')}",
            **model.model_json_schema(mode="validation"),
        }
        out[f"{stem}.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return out


def write(out_dir: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema into `out_dir`; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in generate().items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def stale(out_dir: Path = DEFAULT_DIR) -> list[str]:
    """Names of schema files in `out_dir` that are missing or differ from the models."""
    return [
        name
        for name, text in generate().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point: write the schemas, or with --check report stale ones (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m vpp.grid.schemas", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.out)
        for name in bad:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        return 1 if bad else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
