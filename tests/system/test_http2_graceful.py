"""HTTP/2 streams in flight through a stop, a reload, max_requests and graceful_timeout,
with `gateway serve` as a subprocess (issue 16, point 5).

Each of these ends in the worker's drain, which asks every HTTP/2 connection for the
two-step GOAWAY (gateway/server/h2_connection.py, rule "a graceful `shutdown()`"). A raw
client that reads on past a GOAWAY (tests/support/h2_clients.py FrameClient) holds a
stream of the probe app's slow route (tests/apps/worker_probe.py) while the test
signals, and checks the frames: the notice (GOAWAY 2^31-1), the final GOAWAY naming its
last stream, its stream answered whole, a stream opened after the final GOAWAY refused,
then the end.

The h2load test measures what h2load can measure. h2load (nghttp2 1.52 here) never
reconnects after a GOAWAY: the requests a connection has not sent yet when one arrives
are refused by nghttp2 itself and counted as failed and errored, though they never
reached the server. So every h2load connection sends all its requests at once (as many
per connection as its -m allows), and connections are opened at a fixed rate (--rate)
through the whole run, so that some are open on the old workers when SIGHUP comes and
the rest are served by the new ones. The test asserts that h2load reports every
request succeeded (2xx), none failed or errored, that the app saw each request once,
and that both generations of workers served part of the run.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import h2.errors
import pytest
from support.deadlines import wait_until
from support.h2_clients import FrameClient
from support.processes import GatewayProcess, child_pids, mount_file

from gateway.http.h2_goaway import MAX_STREAM_ID

DEADLINE_S = 30.0
# The stream held in flight: long enough that it is still running when the drain comes,
# after a reload's or a retirement's new worker has booted on a busy machine.
SLOW_REQUEST_S = 5
NOTICE = (MAX_STREAM_ID, 0)  # GOAWAY 2^31-1, NO_ERROR
REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM
# max_requests for the retirement test: reached by the quick streams beside the slow one.
MAX_REQUESTS = 5
# graceful_timeout for the cut: short, against a stream that would run a minute.
SHORT_GRACEFUL_S = 1
OUTLIVING_S = 60
# The h2load run (see the module's docstring): REQUESTS in all, PER_CONNECTION on each
# connection (also its -m: all sent at once), RATE connections opened per 100 ms: about
# 2,000 requests a second for 10 s, which the reloads fall well inside.
H2LOAD = shutil.which("h2load")
REQUESTS = 20_000
PER_CONNECTION = 10
RATE = 20
# Reloads during the run, each after this many more requests: each drain is a chance for
# a request crossing a GOAWAY (a single GOAWAY failed one run in three).
RELOADS = 3
BETWEEN_RELOADS = REQUESTS // 10
LOAD_LIMIT_S = 120.0


def start(
    tmp_path: Path, server: str = "", *args: str, graceful_s: int = 10
) -> tuple[GatewayProcess, Path]:
    """`gateway serve` on the probe app, with `graceful_s` for graceful_timeout; its
    probe log."""
    probe_log = tmp_path / "probe.log"
    config = mount_file(tmp_path / "gateway.toml", server)
    graceful = f"graceful_timeout = {graceful_s}"
    config.write_text(config.read_text().replace("graceful_timeout = 10", graceful))
    return GatewayProcess(config, *args, env={"WORKER_PROBE_LOG": str(probe_log)}), probe_log


def port_of(gateway: GatewayProcess) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


def sleepers(probe_log: Path) -> list[int]:
    """The pids of the workers that began a /sleep request, one per request."""
    if not probe_log.exists():
        return []
    lines = (line.split() for line in probe_log.read_text().splitlines())
    return [int(pid) for event, pid in lines if event == "sleep-start"]


def served_more(probe_log: Path, count: int) -> Callable[[], bool]:
    """A condition: `count` more /sleep requests began than have now."""
    target = len(sleepers(probe_log)) + count
    return lambda: len(sleepers(probe_log)) >= target


def slow_stream(
    gateway: GatewayProcess, probe_log: Path, seconds: int = SLOW_REQUEST_S
) -> FrameClient:
    """A client whose stream 1 runs in the app when this returns."""
    client = FrameClient(port_of(gateway))
    client.get(1, f"/sleep?{seconds}")
    wait_until(lambda: bool(sleepers(probe_log)), DEADLINE_S)
    return client


def finish_after_goaway(client: FrameClient, last_stream: int = 1) -> None:
    """Both GOAWAYs while stream 1 still runs; a stream after the final one refused; then
    stream 1 answered whole, and the server's close."""
    client.read_until(lambda: len(client.goaways()) == 2, DEADLINE_S)
    assert client.goaways() == [NOTICE, (last_stream, 0)]
    assert not client.ended(1), "stream 1 was no longer in flight at the GOAWAY"
    later = last_stream + 2
    client.get(later, "/pid")
    client.read_until(lambda: False, DEADLINE_S)  # to the server's close
    assert client.closed
    assert client.status(1) == b"200" and client.ended(1)
    assert client.status(later) == b"" and client.resets(later) == [REFUSED]


def answered_pid(gateway: GatewayProcess) -> int:
    """One /pid stream on a new connection: the pid of the worker that answered."""
    client = FrameClient(port_of(gateway))
    with client.sock:
        client.get(1, "/pid")
        client.read_until(lambda: client.ended(1), DEADLINE_S)
    assert client.status(1) == b"200"
    return int(client.body(1))


def test_a_stop_finishes_the_stream_in_flight_between_goaway_and_close(tmp_path: Path) -> None:
    gateway, probe_log = start(tmp_path)
    try:
        gateway.wait_for_line("serving on")
        client = slow_stream(gateway, probe_log)
        with client.sock:
            gateway.proc.send_signal(signal.SIGTERM)
            finish_after_goaway(client)
        assert int(client.body(1)) == gateway.proc.pid  # workers = 1: served in-process
        # The one SIGTERM ends it: a second (`stop`) would race with its last steps.
        assert gateway.proc.wait(DEADLINE_S) == 0
    finally:
        gateway.stop()


def test_a_reload_finishes_the_stream_in_flight_and_new_workers_serve_new_connections(
    tmp_path: Path,
) -> None:
    gateway, probe_log = start(tmp_path, "", "--workers", "2")
    try:
        gateway.wait_for_line("2 workers ready")
        old = set(child_pids(gateway.proc.pid))
        client = slow_stream(gateway, probe_log)
        with client.sock:
            gateway.proc.send_signal(signal.SIGHUP)
            gateway.wait_for_line("generation 2 ready")
            finish_after_goaway(client)
        assert int(client.body(1)) in old
        assert answered_pid(gateway) not in old
        wait_until(lambda: not old & set(child_pids(gateway.proc.pid)), DEADLINE_S)
    finally:
        assert gateway.stop() == 0


def test_a_worker_retiring_at_max_requests_finishes_its_streams_and_the_client_reconnects(
    tmp_path: Path,
) -> None:
    limits = f"max_requests = {MAX_REQUESTS}\nmax_requests_jitter = 0"
    gateway, probe_log = start(tmp_path, limits, "--workers", "2")
    try:
        gateway.wait_for_line("2 workers ready")
        client = slow_stream(gateway, probe_log)
        with client.sock:
            # One connection, one worker: the quick streams' ends reach its limit while
            # stream 1 still runs.
            quick = [3 + 2 * n for n in range(MAX_REQUESTS)]
            for stream_id in quick:
                client.get(stream_id, "/pid")
            finish_after_goaway(client, last_stream=quick[-1])
        retired = int(client.body(1))
        assert all(int(client.body(s)) == retired for s in quick)
        assert answered_pid(gateway) != retired
    finally:
        assert gateway.stop() == 0


def test_a_stream_that_outlives_graceful_timeout_is_cut_and_the_process_exits(
    tmp_path: Path,
) -> None:
    gateway, probe_log = start(tmp_path, graceful_s=SHORT_GRACEFUL_S)
    try:
        gateway.wait_for_line("serving on")
        client = slow_stream(gateway, probe_log, OUTLIVING_S)
        with client.sock:
            gateway.proc.send_signal(signal.SIGTERM)
            client.read_until(lambda: False, DEADLINE_S)  # to the server's close
        assert client.closed and client.goaways() == [NOTICE, (1, 0)]
        assert not client.ended(1)  # cut, not answered
        # Far less than the stream would have run: the drain did not wait for it.
        assert gateway.proc.wait(OUTLIVING_S / 2) == 0
    finally:
        gateway.stop()


def h2load_command(h2load: str, url: str) -> list[str]:
    """REQUESTS over connections of PER_CONNECTION each, all sent at once (-m), RATE new
    connections every 100 ms (the module's docstring says why)."""
    connections = REQUESTS // PER_CONNECTION
    spread = ["--rate", str(RATE), "--rate-period", "100ms"]
    return [
        h2load,
        "-n",
        str(REQUESTS),
        "-c",
        str(connections),
        "-m",
        str(PER_CONNECTION),
        *spread,
        url,
    ]


@pytest.mark.skipif(H2LOAD is None, reason="h2load (nghttp2-client) is not installed")
def test_h2load_through_reloads_fails_no_request(tmp_path: Path) -> None:
    assert H2LOAD is not None
    gateway, probe_log = start(tmp_path, "access_log = false", "--workers", "2")
    try:
        gateway.wait_for_line("2 workers ready")
        old = set(child_pids(gateway.proc.pid))
        load = subprocess.Popen(
            h2load_command(H2LOAD, f"{gateway.url}/sleep?0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for generation in range(2, 2 + RELOADS):
                wait_until(served_more(probe_log, BETWEEN_RELOADS))
                gateway.proc.send_signal(signal.SIGHUP)
                gateway.wait_for_line(f"generation {generation} ready")
            output, _ = load.communicate(timeout=LOAD_LIMIT_S)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    finally:
        assert gateway.stop() == 0
    all_of_them = ", ".join(f"{REQUESTS} {what}" for what in ("total", "started", "done"))
    summary = f"requests: {all_of_them}, {REQUESTS} succeeded, 0 failed, 0 errored, 0 timeout"
    assert summary in output, output
    assert f"status codes: {REQUESTS} 2xx" in output, output
    served = sleepers(probe_log)
    assert len(served) == REQUESTS  # each request reached the app once
    assert set(served) & old and set(served) - old, "the reloads did not fall inside the run"
