"""CLI conventions (issue 16): --version, -h, choices from the registries, one-line errors,
`vpp check` and `vpp schema`. Each command runs as a real `python -m vpp` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vpp.control.strategy import REGISTRY
from vpp.mqtt_link import AGENT_VERSION

ROOT = Path(__file__).resolve().parent.parent
SUMMER = ROOT / "config" / "scenarios" / "office-summer-day.yaml"


def vpp(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "vpp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def one_line_error(r: subprocess.CompletedProcess[str], *names: str) -> str:
    """The process failed with one `error:` line naming each of `names`, no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    for n in names:
        assert n in lines[0], r.stderr
    return lines[0]


def test_version_is_the_agents() -> None:
    r = vpp("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == AGENT_VERSION


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("run",),
        ("sim",),
        ("replay",),
        ("demo",),
        ("event",),
        ("event", "send"),
        ("check",),
        ("schema",),
        ("status",),
        ("aggregate",),
    ],
)
def test_h_is_help(command: tuple[str, ...]) -> None:
    short, long = vpp(*command, "-h"), vpp(*command, "--help")
    assert short.returncode == 0, short.stderr
    assert short.stdout == long.stdout
    assert "Usage: vpp" in short.stdout


def test_strategy_choices_are_the_registry() -> None:
    r = vpp("replay", "-h")
    assert "|".join(REGISTRY) in r.stdout.replace("\n", "").replace(" ", "").replace("│", "")


@pytest.mark.parametrize(
    "args, option",
    [
        (("replay", SUMMER, "--strategy", "greedy"), "--strategy"),
        (("replay", SUMMER, "--compare", "greedy"), "--compare"),
        (("run", ROOT / "config" / "sites" / "office.yaml", "--strategy", "greedy"), "--strategy"),
    ],
)
def test_a_wrong_strategy_is_refused_before_any_work(
    args: tuple[str | Path, ...], option: str, tmp_path: Path
) -> None:
    r = vpp(*args, "--out", tmp_path / "out") if args[0] == "replay" else vpp(*args)
    assert r.returncode == 2
    line = one_line_error(r, option, "greedy", *REGISTRY)
    assert "see vpp" in line  # where to look
    assert not (tmp_path / "out").exists()  # refused before the replay started


def test_usage_errors_are_one_line() -> None:
    assert vpp("replay").returncode == 2
    one_line_error(vpp("replay"), "scenario_file")
    r = vpp("run", "x.yaml", "--no-such-option")
    assert r.returncode == 2
    one_line_error(r, "--no-such-option")


def test_event_send_needs_one_signal_before_connecting() -> None:
    """The signal is which of --curtail-kw, --cap-kw, --price is given; two are refused
    before any connection (no broker runs here: a connection attempt would say so)."""
    r = vpp(
        "event",
        "send",
        "--site",
        "s",
        "--curtail-kw",
        "5",
        "--price",
        "1",
        "--duration",
        "PT1H",
        "--broker",
        "mqtt://127.0.0.1:9",
    )
    assert r.returncode == 2
    one_line_error(r, "curtail_kw", "price")


BUNDLED = sorted(
    p for sub in ("sites", "scenarios", "profiles") for p in (ROOT / "config" / sub).glob("*.yaml")
)


def test_check_passes_every_bundled_file() -> None:
    r = vpp("check", *BUNDLED)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(BUNDLED)
    assert lines[BUNDLED.index(ROOT / "config" / "sites" / "office.yaml")].endswith(
        "office.yaml: site office-1, 20 devices (battery 1, curtailable_load 5, ev_charger 8, "
        "hvac 4, meter 1, pv 1)"
    )
    summer = lines[BUNDLED.index(SUMMER)]
    assert "scenario office-summer-day, site office-1" in summer and "1 event," in summer
    battery = lines[BUNDLED.index(ROOT / "config" / "profiles" / "sunspec-battery.yaml")]
    assert "profile sunspec-battery, battery over modbus" in battery


def _broken(tmp_path: Path, src: Path, old: str, new: str) -> Path:
    text = src.read_text()
    assert old in text
    out = tmp_path / src.name
    out.write_text(text.replace(old, new, 1))
    return out


OFFICE = ROOT / "config" / "sites" / "office.yaml"
BATTERY = ROOT / "config" / "profiles" / "sunspec-battery.yaml"


@pytest.mark.parametrize(
    "src, old, new, field",
    [
        (OFFICE, "site_id: office-1", "site_id: office-1\nbogus_field: 1", "bogus_field"),
        (OFFICE, "timezone:", "timezone: Mars/Olympus\nx_timezone:", "timezone"),
        (BATTERY, "kind: battery", "kind: toaster", "kind"),
        (SUMMER, "start: 2026-07-15", "start: 2026-07-32", "start"),
        (SUMMER, "duration:", "duration: soon\nx_duration:", "duration"),
    ],
)
def test_check_names_file_and_field_of_a_broken_copy(
    tmp_path: Path, src: Path, old: str, new: str, field: str
) -> None:
    broken = _broken(tmp_path, src, old, new)
    if src == SUMMER:  # the copy's site: the bundled one
        text = broken.read_text().replace("site: ../sites/", f"site: {OFFICE.parent}/")
        broken.write_text(text)
    r = vpp("check", OFFICE, broken)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout.startswith(f"{OFFICE}: site office-1")  # the good file is still summarised
    errors = r.stderr.strip().splitlines()
    assert errors and all(e.startswith(f"error: {broken}: ") for e in errors), r.stderr
    assert any(f"{field}:" in e for e in errors), r.stderr


def test_check_refuses_what_is_no_config_file(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("foo: 1\n")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    r = vpp("check", tmp_path / "other.yaml", tmp_path / "bad.yaml", tmp_path / "none.yaml")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 3, r.stderr
    assert "other.yaml: (top): not a site file" in errors[0]
    assert "bad.yaml: not valid YAML" in errors[1]
    assert "none.yaml: cannot read" in errors[2]


@pytest.mark.parametrize("kind", ["site", "scenario", "profile", "fleet", "fleet-scenario"])
def test_schema_files_are_what_vpp_schema_prints(kind: str) -> None:
    r = vpp("schema", kind)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no pydantic warnings on the way
    path = ROOT / "docs" / "schemas" / f"{kind}.schema.json"
    assert path.read_text(encoding="utf-8") == r.stdout, (
        f"{path} is stale: run vpp schema {kind} > {path.relative_to(ROOT)}"
    )
    doc = json.loads(r.stdout)
    required = {
        "site": "site_id",
        "scenario": "duration",
        "profile": None,
        "fleet": "district_id",
        "fleet-scenario": "sites",
    }[kind]
    if required:
        assert required in doc["required"]
    else:
        assert {"modbus", "mqtt"} == set(doc["discriminator"]["mapping"])


def test_schema_refuses_an_unknown_kind() -> None:
    r = vpp("schema", "tariff")
    assert r.returncode == 2
    one_line_error(r, "tariff", "site", "scenario", "profile", "fleet", "fleet-scenario")


def test_replay_of_an_impossible_start_is_one_line(tmp_path: Path) -> None:
    broken = _broken(tmp_path, SUMMER, "start: 2026-07-15", "start: 2026-07-32")
    broken.write_text(broken.read_text().replace("site: ../sites/", f"site: {OFFICE.parent}/"))
    r = vpp("replay", broken, "--out", tmp_path / "out")
    assert r.returncode == 2
    one_line_error(r, str(broken), "start:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, field",
    [
        (("--data-dir", "/proc/nope"), "--data-dir"),
        ((), "store.data_dir"),  # the site file's
    ],
)
def test_run_with_an_unusable_store_folder_is_one_line(
    tmp_path: Path, args: tuple[str, ...], field: str
) -> None:
    site = OFFICE
    if not args:
        site = _broken(tmp_path, OFFICE, "  data_dir: data\n", "  data_dir: /proc/nope\n")
    # No broker runs on port 9: the store is opened before any connection.
    r = vpp("run", site, "--broker", "mqtt://127.0.0.1:9", *args)
    assert r.returncode == 2
    one_line_error(r, field, "/proc/nope")
