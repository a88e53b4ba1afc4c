"""benchmarks/: the runner's arithmetic and rules, without timing anything.

The suite holds no timed assertion (issue 3): these tests check what the runner reports
from given measurements (ratios within a round, starved runs dropped, wrk's output read);
never how fast anything is. That micro.py drives real requests to the end is checked in
tests/system/test_benchmark_micro.py, since it starts a process.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from gateway.asgi import Interface, Receive, Scope, Send
from gateway.routing.router import Mount, Router

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

from harness.cases import (  # noqa: E402 - the runner's own import root
    CASES,
    CONFIGS_DIR,
    PEERS,
    Case,
    ConfigFiles,
    all_servers,
    gateway_variant,
)
from harness.cpu import STARVED_SHARE, Snapshot, starvation  # noqa: E402
from harness.h2load import h2load_argv, latency_percentiles_ms, parse_h2load  # noqa: E402
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


# h2load -c 64 -m 10 -t 1 -D 3 --warm-up-time 1 against the gateway's asgi-hello, verbatim.
H2LOAD_OUTPUT = """starting benchmark...
spawning thread #0: 64 total client(s). Timing-based test with 1s of warm-up time and 3s of main duration for measurements.
Warm-up started for thread #0.
progress: 9% of clients started
progress: 93% of clients started
Application protocol: h2c
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 4.00s, 5946.00 req/s, 210.48KB/s
requests: 17838 total, 17838 started, 17838 done, 17838 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 17838 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 631.43KB (646584) total, 119.99KB (122873) headers (space savings 94.29%), 290.53KB (297505) data
                     min         max         mean         sd        +/- sd
time for request:    95.88ms    211.81ms    107.54ms     10.28ms    91.87%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :      80.95       93.30       92.86        2.01    95.31%
"""  # noqa: E501 - as h2load wrote it
# Lines of an h2load --log-file (start in us since the epoch, status, us to the end of the
# response), as written against hypercorn: a status of 0 is a stream whose head came in
# the warm-up; -1 would be a failed stream.
H2LOAD_LOG = """1796540051757476\t0\t221379
1796540051845434\t200\t139857
1796540051845437\t200\t139868
1796540051845441\t200\t139869
"""


def test_h2load_output_gives_rate_requests_and_latency_from_its_log() -> None:
    result = parse_h2load(H2LOAD_OUTPUT, H2LOAD_LOG)
    assert (result.rps, result.requests) == (5946.0, 17838)
    assert (result.non_2xx, result.socket_errors) == (0, 0)
    assert (result.p50_ms, result.p99_ms) == pytest.approx((139.868, 221.379))


@pytest.mark.parametrize(
    "counts",
    ["17838 succeeded, 2 failed, 0 errored, 0 timeout", "17838 succeeded, 0 failed, 1 errored,"
     " 0 timeout", "17838 succeeded, 0 failed, 0 errored, 4 timeout"],
)  # fmt: skip
def test_a_request_h2load_did_not_complete_fails_the_run(counts: str) -> None:
    text = H2LOAD_OUTPUT.replace("17838 succeeded, 0 failed, 0 errored, 0 timeout", counts)
    with pytest.raises(RuntimeError, match="h2load: "):
        parse_h2load(text, H2LOAD_LOG)


def test_h2load_answers_other_than_2xx_flag_the_run() -> None:
    text = H2LOAD_OUTPUT.replace("0 4xx, 0 5xx", "3 4xx, 2 5xx")
    assert parse_h2load(text, H2LOAD_LOG).non_2xx == 5


def test_h2load_output_it_cannot_read_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match="cannot read h2load output"):
        parse_h2load("connect: Connection refused\n", "")


def test_latency_percentiles_are_nearest_rank_and_leave_failed_streams_out() -> None:
    log = "".join(f"1\t200\t{us}\n" for us in range(1000, 101_000, 1000))  # 1..100 ms
    log += "1\t-1\t9999999\n"
    assert latency_percentiles_ms(log, (50, 99, 100)) == [50.0, 99.0, 100.0]


def test_h2load_runs_one_thread_pinned_with_its_warm_up_in_the_same_process() -> None:
    argv = h2load_argv("http://127.0.0.1:8000/", 10, 2, 64, 10, Path("/tmp/x.tsv"))
    assert argv[:5] == ["taskset", "-c", "1", "h2load", "-t1"]
    assert {"-c64", "-m10", "-D10", "--warm-up-time=2", "--log-file=/tmp/x.tsv"} <= set(argv)
    assert argv[-1].startswith("http://")  # h2c with prior knowledge


def serving(case: Case, tmp_path: Path) -> set[str]:
    configs = ConfigFiles(tmp_path)
    servers = [*all_servers(configs, []), gateway_variant(configs, "h11")]
    return {server.name for server in servers if server.serves(case)}


def test_http2_cases_pair_only_with_servers_that_speak_it(tmp_path: Path) -> None:
    for name in ("h2-asgi-hello", "h2-fastapi-json"):
        case = next(case for case in CASES if case.name == name)
        assert case.http2
        assert serving(case, tmp_path) == {"gateway", "hypercorn", "granian-asgi"}


def test_http1_cases_keep_their_servers_and_hypercorn_is_only_an_http2_peer(
    tmp_path: Path,
) -> None:
    assert serving(CASE, tmp_path) == {
        "gateway", "gateway-h11", "uvicorn-httptools", "uvicorn-h11", "granian-asgi",
        "gunicorn-asgi",
    }  # fmt: skip
    wsgi = next(case for case in CASES if case.name == "wsgi-hello")
    assert "hypercorn" not in serving(wsgi, tmp_path)


def test_http2_cases_serve_the_same_apps_as_their_http1_twins() -> None:
    by_name = {case.name: case for case in CASES}
    for name in ("asgi-hello", "fastapi-json"):
        http1, http2 = by_name[name], by_name[f"h2-{name}"]
        assert (http2.config, http2.path, http2.target) == (http1.config, http1.path, http1.target)
        assert http2.expect is http1.expect


SITE_CASES = [case for case in CASES if case.site_target]
SITE_SERVERS = {"granian-starlette", "uvicorn-starlette"}


def test_the_mixed_site_has_both_sides_of_hello_json_and_64k() -> None:
    assert {case.name for case in SITE_CASES} == {
        f"mixed-{side}-{kind}" for side in ("wsgi", "asgi") for kind in ("hello", "json", "64k")
    }


def test_mixed_site_cases_pair_only_with_the_gateway_and_the_whole_site_servers(
    tmp_path: Path,
) -> None:
    """benchmarks/harness/cases.py, rule "a mixed-site case": a peer of one app alone
    does not serve the site's URLs, and the site's servers serve nothing else."""
    for case in SITE_CASES:
        assert serving(case, tmp_path) == {"gateway", "gateway-h11", *SITE_SERVERS}
    for case in CASES:
        if not case.site_target:
            assert not serving(case, tmp_path) & SITE_SERVERS, case.name


async def unused_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("only routed, never called")


def routed_interface(mounts: list[dict[str, str]], path: str) -> str:
    """The interface of the mount the gateway's own router picks for `path`."""
    router = Router(
        [Mount(m["prefix"], unused_app, 1 << 20, Interface(m["interface"])) for m in mounts]
    )
    mount = router.match(path)
    assert mount is not None, path
    return str(mount.interface)


def test_each_mixed_site_case_loads_its_own_side_of_a_two_mount_site() -> None:
    """The gateway's mount file is the site (apps/bench_site.py builds the peers'
    Starlette app from the same file): one WSGI mount and one ASGI mount, and the
    case's URL reaches the side its name says, on both sides of the same file."""
    sides: dict[str, set[str]] = {}
    for case in SITE_CASES:
        with (CONFIGS_DIR / case.config).open("rb") as file:
            mounts = tomllib.load(file)["mount"]
        assert sorted(mount["interface"] for mount in mounts) == ["asgi", "wsgi"]
        assert routed_interface(mounts, case.path) == case.interface
        assert case.name.startswith(f"mixed-{case.interface}-")
        assert case.site_target.startswith("bench_site:")
        sides.setdefault(f"{case.config} {case.site_target}", set()).add(case.interface)
    assert all(found == {"asgi", "wsgi"} for found in sides.values()), sides


def test_gunicorns_asgi_worker_is_a_peer_on_the_asgi_http1_cases_of_one_app(
    tmp_path: Path,
) -> None:
    served = {case.name for case in CASES if "gunicorn-asgi" in serving(case, tmp_path)}
    assert served == {"asgi-hello", "asgi-64k", "asgi-echo", "fastapi-json", "mixed", "shadow"}
