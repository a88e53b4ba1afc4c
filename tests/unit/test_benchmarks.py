"""benchmarks/: the runner's arithmetic and rules, without timing anything.

The suite holds no timed assertion (issue 3): these tests check what the runner reports
from given measurements (ratios within a round, starved runs dropped, wrk's output read);
never how fast anything is. That micro.py drives real requests to the end is checked in
tests/system/test_benchmark_micro.py, since it starts a process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

from harness.cases import CASES, PEERS  # noqa: E402 - the runner's own import root
from harness.cpu import STARVED_SHARE, Snapshot, starvation  # noqa: E402
from harness.summary import Run, summarize  # noqa: E402
from harness.wrk import parse_wrk, wrk_argv  # noqa: E402

CASE = next(case for case in CASES if case.name == "asgi-hello")
UVICORN = next(server for server in PEERS if server.name == "uvicorn-httptools")


class Gateway:
    """A server row whose ratios the tables report (role "gateway")."""

    name = "gateway"
    role = "gateway"


def run(round_: int, server: str, rps: float, **extra: object) -> Run:
    return Run(round_, CASE.name, server, 1, rps=rps, p50_ms=1.0, p99_ms=2.0, **extra)  # type: ignore[arg-type]


def test_ratios_are_taken_within_each_round_then_their_median() -> None:
    """A round where the machine was slower moves both sides: the ratio of medians (here
    150/100 = 1.5) is not what is reported, the median of per-round ratios is."""
    runs = [
        run(1, "gateway", 200), run(1, "uvicorn-httptools", 100),  # 2.0
        run(2, "gateway", 150), run(2, "uvicorn-httptools", 120),  # 1.25
        run(3, "gateway", 60), run(3, "uvicorn-httptools", 50),  # 1.2
    ]  # fmt: skip
    rows = {row.server: row for row in summarize(runs, CASE, [Gateway(), UVICORN], 3)}  # type: ignore[list-item]
    assert rows["uvicorn-httptools"].ratios["gateway"] == pytest.approx(1.25)
    assert rows["gateway"].rps == 150


def test_a_starved_run_is_dropped_with_its_round_from_the_ratio() -> None:
    runs = [
        run(1, "gateway", 200), run(1, "uvicorn-httptools", 100),
        run(2, "gateway", 900), run(2, "uvicorn-httptools", 100, starved=True),
        run(3, "gateway", 300), run(3, "uvicorn-httptools", 100),
    ]  # fmt: skip
    rows = {row.server: row for row in summarize(runs, CASE, [Gateway(), UVICORN], 3)}  # type: ignore[list-item]
    peer = rows["uvicorn-httptools"]
    assert (peer.kept, peer.starved) == (2, 1)
    assert peer.ratios["gateway"] == pytest.approx(2.5)  # rounds 1 and 3 only


def snapshot(at: float, tasks: dict[tuple[int, int], tuple[int, int]]) -> Snapshot:
    return Snapshot(at, tasks, reaped_s=0.0)


def test_wrk_waiting_on_its_core_marks_the_run_starved() -> None:
    wall_ns = 1e9
    wait_ns = int((STARVED_SHARE + 0.01) * wall_ns)
    before = snapshot(0.0, {(10, 10): (0, 0), (20, 20): (0, 0)})
    after = snapshot(1.0, {(10, 10): (900_000_000, 0), (20, 20): (500_000_000, wait_ns)})
    assert starvation(before, after, server=[10], wrk=20).starved
    quiet = snapshot(1.0, {(10, 10): (900_000_000, 0), (20, 20): (500_000_000, 1_000)})
    assert not starvation(before, quiet, server=[10], wrk=20).starved


def test_another_tasks_cpu_marks_the_run_starved_but_the_servers_own_wait_does_not() -> None:
    before = snapshot(0.0, {(10, 10): (0, 0), (10, 11): (0, 0), (20, 20): (0, 0)})
    # The server's second thread waited for its sibling (a WSGI pool): not starvation.
    siblings = snapshot(1.0, {(10, 10): (500_000_000, 0), (10, 11): (400_000, 400_000_000),
                              (20, 20): (300_000_000, 0)})  # fmt: skip
    assert not starvation(before, siblings, server=[10], wrk=20).starved
    neighbour = snapshot(1.0, {**siblings.tasks, (30, 30): (100_000_000, 0)})
    assert starvation(before, neighbour, server=[10], wrk=20).starved


WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/
  1 threads and 64 connections
  Latency Distribution
     50%    1.82ms
     75%    2.10ms
     90%    2.50ms
     99%  350.00us
  168440 requests in 5.00s, 20.56MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  33688.00
"""


def test_wrk_output_gives_rate_latency_and_errors() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert (result.rps, result.requests) == (33688.0, 168440)
    assert (result.p50_ms, result.p99_ms) == pytest.approx((1.82, 0.35))
    assert (result.non_2xx, result.socket_errors) == (7, 3)


def test_wrk_runs_one_thread_pinned_to_its_own_core() -> None:
    argv = wrk_argv("http://127.0.0.1:8000/", CASE, 10, 64)
    assert argv[:6] == ["taskset", "-c", "1", "wrk", "-t1", "-c64"]
    assert "--latency" in argv and "-d10s" in argv
