"""benchmarks/micro.py run as its own process, as a developer runs it: each case drives
real requests through the gateway's parts to the end. Nothing is timed (issue 3): the
figure it prints is not checked, only that it finishes.

A system test because it starts a process; the runner's arithmetic, which starts
nothing, is checked in tests/unit/test_benchmarks.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize("case", ["asgi-hello", "wsgi-hello", "mixed", "h2-asgi-hello"])
def test_micro_serves_every_request_of_its_case(case: str) -> None:
    """micro.py ends only once every connection has written every response
    (benchmarks/micro.py, rule "a repetition ends"), so finishing a short run is the
    proof; the figure it prints is not checked."""
    done = subprocess.run(
        [sys.executable, str(BENCH_DIR / "micro.py"), case, "--reps", "1", "--rounds", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "us per request" in done.stdout
