"""The examples' Python drivers run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES


def test_volume_filter_driver(env: Path) -> None:
    """examples/volume-filter/run.py submits its sweep with the client and
    reports each of the 10 tasks and the strongest smoothing."""
    cp = subprocess.run(
        [sys.executable, str(EXAMPLES / "volume-filter" / "run.py"), "--workers", "2", "--size", "16",
         "--out", str(env / "out")],
        capture_output=True, text=True, timeout=600,
    )
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert sum(" radius " in l and "removed noise" in l for l in lines) == 10, cp.stdout
    assert lines[-1].startswith("most smoothing: gaussian radius 5"), cp.stdout
    assert (env / "out" / "results.jsonl").read_text().count("\n") == 10
