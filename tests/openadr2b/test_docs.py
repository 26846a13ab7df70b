"""docs/openadr.md's 2.0b configuration example is a valid `grid:` section."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vpp.site import GridConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "openadr.md"


def test_the_2_0b_configuration_example_is_valid() -> None:
    section = DOC.read_text().split("## OpenADR 2.0b", 1)[1]
    (block,) = re.findall(r"```yaml\n(.*?)```", section.split("### What the VEN does")[0], re.S)
    grid = GridConfig.model_validate(yaml.safe_load(block)["grid"])
    assert grid.openadr2b is not None and grid.openadr2b.poll_s == 5
    assert grid.openadr2b.sign and grid.openadr2b.vtn_cert_file is not None
    assert grid.simple_levels_kw == {1: 50, 2: 100, 3: 150}
