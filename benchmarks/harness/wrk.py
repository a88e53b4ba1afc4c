"""The load generator: wrk, one thread pinned to core 1, and what its output says."""

from __future__ import annotations

import re
import subprocess

from harness.cases import BENCH_DIR, Case
from harness.load import GRACE_S, LOAD_CORE, LoadResult

POST_LUA = BENCH_DIR / "post16k.lua"
PACED_LUA = BENCH_DIR / "paced.lua"
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk_argv(url: str, case: Case, duration: float, connections: int) -> list[str]:
    script = ["-s", str(POST_LUA)] if case.post else []
    if case.paced:
        script = ["-s", str(PACED_LUA)]
    return [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}",
        f"-d{max(1, round(duration))}s", "--latency", *script, url,
    ]  # fmt: skip


def run_wrk(argv: list[str], duration: float) -> str:
    """Run wrk to its end (bounded by duration + GRACE_S) and return its output."""
    done = subprocess.run(argv, capture_output=True, timeout=duration + GRACE_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return done.stdout.decode()


def _latency_ms(text: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(found[1]) * UNIT_MS[found[2]] if found else float("nan")


def parse_wrk(text: str) -> LoadResult:
    """Read `wrk --latency` output: req/s, p50, p99, non-2xx and socket errors."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    requests = re.search(r"^\s*(\d+) requests in", text, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = SOCKET_ERRORS.search(text)
    if not rps or not requests:
        raise RuntimeError(f"cannot read wrk output: {text[-300:]!r}")
    return LoadResult(
        rps=float(rps[1]),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        requests=int(requests[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )
