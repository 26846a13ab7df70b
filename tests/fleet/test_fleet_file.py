"""The fleet file: strict, every error one line naming the file and the field; `vpp
aggregate` with a bad one exits 2 with that line (no traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_cli_conventions import one_line_error, vpp
from vpp.fleet.config import FleetError, load_fleet, parse_fleet

GOOD: dict[str, Any] = {
    "district_id": "cbd-1",
    "broker": {"host": "127.0.0.1", "port": 1883},
    "sites": [{"site_id": "office-1", "max_kw": 80}, {"site_id": "mall-2"}],
    "allocation": {"reliability_margin": 0.5},
}


def test_a_good_fleet_file_reads_with_its_defaults(tmp_path: Path) -> None:
    f = parse_fleet(GOOD, tmp_path / "fleet.yaml")
    assert [s.site_id for s in f.sites] == ["office-1", "mall-2"]
    assert f.allocation.opt_out_below == 0.5 and f.allocation.reliability_margin == 0.5
    assert f.store == tmp_path / "data" / "district.sqlite"  # beside the file


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"sites": [{"site_id": "a", "max_kw": -1}]}, "sites[0].max_kw"),
        ({"sites": [{"site_id": "a"}, {"site_id": "a"}]}, "sites[1].site_id: 'a' is enrolled"),
        ({"sites": []}, "sites"),
        ({"allocation": {"reliability_margin": 2}}, "allocation.reliability_margin"),
        ({"allocation": {"margin": 1}}, "allocation.margin: Extra inputs"),
        ({"district_id": "a/b#"}, "district_id"),
        ({"broker": {"port": 70000}}, "broker.port"),
    ],
)
def test_bad_fleet_file_names_the_field(tmp_path: Path, change: dict[str, Any], named: str) -> None:
    with pytest.raises(FleetError) as e:
        parse_fleet({**GOOD, **change}, tmp_path / "fleet.yaml")
    assert named in str(e.value) and "fleet.yaml" in str(e.value)
    assert "\n" not in str(e.value)


def test_vpp_aggregate_refuses_a_bad_fleet_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("district_id: d\nsites:\n  - site_id: a\n    max_kw: lots\n")
    with pytest.raises(FleetError):
        load_fleet(bad)
    r = vpp("aggregate", bad)
    assert r.returncode == 2
    one_line_error(r, "fleet.yaml", "sites[0].max_kw")
