"""Every bundled config file names its JSON Schema for editors (a `yaml-language-server`
hint on its first line, issue 16) and is valid against it: the schema an editor checks as
one types is the one `vpp schema` prints."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devices.profile import read_yaml

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"sites": "site", "scenarios": "scenario", "profiles": "profile"}
BUNDLED = sorted(p for sub in KINDS for p in (ROOT / "config" / sub).glob("*.yaml"))


def _as_an_editor_reads_it(value: Any) -> Any:
    """YAML 1.2, as editors read it, has no timestamps: `start: 2026-07-15` is a string."""
    if isinstance(value, dict):
        return {k: _as_an_editor_reads_it(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_an_editor_reads_it(v) for v in value]
    return value.isoformat() if isinstance(value, date) else value


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bundled_file_names_its_schema_and_is_valid_against_it(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    kind = KINDS[path.parent.name]
    assert first == f"# yaml-language-server: $schema=../../docs/schemas/{kind}.schema.json"
    schema_path = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert schema_path == ROOT / "docs" / "schemas" / f"{kind}.schema.json"
    schema = json.loads(schema_path.read_text())
    data = _as_an_editor_reads_it(read_yaml(path, ValueError))
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    ]
    assert errors == []


def test_the_schema_catches_what_the_editor_should_flag() -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "site.schema.json").read_text())
    data = _as_an_editor_reads_it(read_yaml(ROOT / "config" / "sites" / "office.yaml", ValueError))
    data["bogus_field"] = 1
    data["devices"][0]["port"] = "fifteen"
    found = sorted(
        ".".join(map(str, e.absolute_path)) or e.message
        for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    assert found == ["Additional properties are not allowed ('bogus_field' was unexpected)",
                     "devices.0.port"]  # fmt: skip
