"""Where log lines go (vpp.log): the stderr of start-up even while a library swaps
`sys.stderr` (Pyomo does while HiGHS runs, in a worker thread live), a progress bar's file
for a while (`logs_to`), and nothing below ERROR after `quiet()`. In a fresh process each:
logging is configured once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import io, json, logging, sys
import structlog
from vpp.log import configure_logging, logs_to, quiet
configure_logging("INFO", json=True)
log = structlog.get_logger("t")
real, sys.stderr = sys.stderr, io.StringIO()   # what Pyomo's capture_output does
log.info("while_swapped")
swapped, sys.stderr = sys.stderr.getvalue(), real
bar = io.StringIO()
with logs_to(bar):
    log.info("to_the_bar")
    logging.getLogger("lib").warning("lib_to_the_bar")
log.info("after_the_bar")
quiet()
log.info("dropped")
log.warning("dropped_too")
log.error("kept")
print(json.dumps(swapped))
print(json.dumps(bar.getvalue()))
"""


def test_log_lines_go_to_the_start_up_stderr_or_where_logs_to_says_and_quiet_drops() -> None:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    swapped, bar = (json.loads(line) for line in r.stdout.splitlines())
    assert swapped == ""  # nothing went into the swapped-in file
    assert [json.loads(line)["event"] for line in bar.splitlines()[:1]] == ["to_the_bar"]
    assert "lib_to_the_bar" in bar
    events = [json.loads(line)["event"] for line in r.stderr.splitlines()]
    assert events == ["while_swapped", "after_the_bar", "kept"]
