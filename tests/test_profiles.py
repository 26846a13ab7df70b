"""Every bundled profile loads; broken ones fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.codec import decode, encode, plan_reads
from devices.profile import ModbusProfile, PointType, ProfileError, load_profile, profile_dir

PROFILES = sorted(profile_dir().glob("*.yaml"))


def test_bundled_profiles_exist_for_every_kind() -> None:
    kinds = {load_profile(p).kind for p in PROFILES}
    assert {"battery", "ev_charger", "hvac", "meter"} <= {str(k) for k in kinds}
    assert any(load_profile(p).transport == "mqtt" for p in PROFILES)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_profile_loads_and_reads_plan_gaps_no_longer_than_max_read_gap(path: Path) -> None:
    profile = load_profile(path)
    if not isinstance(profile, ModbusProfile):
        return
    covered = set()
    for block in plan_reads(profile):
        assert block.count <= 125
        at = block.address
        for n in block.points:  # in address order
            p = profile.points[n]
            assert 0 <= p.address - at <= profile.max_read_gap, f"{n}: a gap too long"
            at = p.address + p.count
        assert at == block.address + block.count
        covered |= set(block.points)
    assert covered == set(profile.points)


def test_max_read_gap_joins_blocks_only_across_short_gaps() -> None:
    bat = load_profile(profile_dir() / "sunspec-battery.yaml")
    assert isinstance(bat, ModbusProfile)
    strict = bat.model_copy(update={"max_read_gap": 0})
    assert [(b.address, b.count) for b in plan_reads(strict)] == [(40000, 11), (40100, 5)]
    assert [(b.address, b.count) for b in plan_reads(bat)] == [(40000, 105)]
    short = bat.model_copy(update={"max_read_gap": 88})  # the gap is 89 registers
    assert len(plan_reads(short)) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("kind: battery\npoints: {}\n", "name: Field required"),
        ("name: x\nkind: toaster\npoints: {}\n", "kind: Input should be"),
        (
            "name: x\nkind: meter\npoints:\n  import_power_kw: {table: input, address: 0,"
            " type: f32, scalee: 2}\n",
            "points.import_power_kw.scalee: Extra inputs are not permitted",
        ),
        (
            "name: x\nkind: meter\npoints:\n  import_power_kw: {table: input, address: 0,"
            " type: f64}\n",
            "points.import_power_kw.type: Input should be",
        ),
        ("name: x\nkind: meter\npoints: {}\n", "needs the points"),
        (
            "name: x\nkind: curtailable_load\npoints:\n  power_kw: {table: input, address: 0}\n"
            "  shed: {table: coil, address: 0, type: bool, access: rw}\n"
            "  watchdog_s: {table: holding, address: 0, access: rw}\n",
            "points.watchdog_s: Value error, a writable point needs min and max",
        ),
        ("- just a list\n", "a profile is a mapping"),
    ],
)
def test_broken_profile_names_file_and_field(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(body)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize(
    ("type_", "value"),
    [("u16", 65535), ("s16", -32768), ("u32", 4_000_000_000), ("s32", -2_000_000_000)],
)
def test_codec_round_trips(word_order: str, type_: str, value: int) -> None:
    from devices.profile import ModbusPoint

    point = ModbusPoint(table="holding", address=0, type=PointType(type_))
    regs = encode(point, value, word_order)  # type: ignore[arg-type]
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode(point, regs, word_order) == value  # type: ignore[arg-type]


def test_codec_word_order_and_scale_factor() -> None:
    from devices.profile import ModbusPoint

    point = ModbusPoint(table="holding", address=0, type=PointType.u32, scale=0.001)
    assert encode(point, 70.0, "big") == [1, 4464]  # 70 000 = 0x0001_1170
    assert encode(point, 70.0, "little") == [4464, 1]
    sf_point = ModbusPoint(table="holding", address=0, type=PointType.s16, scale=0.001)
    assert encode(sf_point, 250.0, "big", sf=1) == [25000]
    assert decode(sf_point, [25000], "big", sf=1) == pytest.approx(250.0)
