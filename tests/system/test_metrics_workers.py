"""Metrics summed across workers: `gateway serve --workers 2` with `metrics_path`, as a
subprocess, and `gateway status` reading it.

Each worker writes its figures to its own files in the directory the supervisor made
(prometheus_client's multiprocess mode); whichever worker the kernel hands a scrape to
must answer the sum. The requests go on new connections until both workers have served
some (the test app answers its pid), so a total that equals the requests sent counts
both workers' requests, whoever answered the scrape.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.metric_samples import Samples, scrape_url
from support.processes import GatewayProcess, child_pids, gateway_status, mount_file

PATH = "/_gateway/metrics"
DEADLINE_S = 30.0
# Requests sent, on new connections, until both workers have answered some: the kernel
# spreads new connections over the workers, so a few dozen almost always do.
MAX_REQUESTS = 400
NOT_FOUND = 7  # requests that get a 404, counted apart
SCRAPES = 8  # each on a new connection, so any worker may answer it
# A worker retires after this many requests (max_requests): scrapes count too.
RECYCLE_AFTER = 20


@pytest.fixture
def metrics_dir_parent(tmp_path: Path) -> Path:
    """Where the supervisor makes its metrics directory (TMPDIR for the server)."""
    parent = tmp_path / "tmp"
    parent.mkdir()
    return parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config = tmp_path / "gateway.toml"
    mount_file(config, f'metrics_path = "{PATH}"')
    return config


@pytest.fixture
def gateway(config: Path, metrics_dir_parent: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(config, "--workers", "2", env={"TMPDIR": str(metrics_dir_parent)})
    try:
        process.wait_for_line("2 workers ready")
        yield process
    finally:
        process.stop()


def scrape(gateway: GatewayProcess) -> Samples:
    """One scrape on a connection of its own."""
    return scrape_url(gateway.url + PATH)


def requests(samples: Samples, status: str) -> float:
    labels = frozenset({("mount", "/"), ("status_class", status)})
    return samples[("gateway_requests_total", labels)]


def serve_from_both_workers(gateway: GatewayProcess) -> Counter[int]:
    """Requests on new connections until both workers answered: how many each did."""
    answered: Counter[int] = Counter()
    end = time.monotonic() + DEADLINE_S
    while len(answered) < 2 and sum(answered.values()) < MAX_REQUESTS:
        assert time.monotonic() < end, "the workers did not both answer in time"
        response = httpx.get(gateway.url + "/pid", headers={"Connection": "close"})
        assert response.status_code == 200
        answered[int(response.text)] += 1
    assert len(answered) == 2, f"one worker answered all {MAX_REQUESTS} requests"
    return answered


def test_the_totals_are_summed_across_two_workers(gateway: GatewayProcess, config: Path) -> None:
    answered = serve_from_both_workers(gateway)
    sent = sum(answered.values())
    with httpx.Client(base_url=gateway.url) as client:
        for _ in range(NOT_FOUND):
            assert client.get("/nothing").status_code == 404
    for _ in range(SCRAPES):
        samples = scrape(gateway)
        assert requests(samples, "2xx") == sent
        assert requests(samples, "4xx") == NOT_FOUND
        latency = ("gateway_request_duration_seconds_count", frozenset({("mount", "/")}))
        assert samples[latency] == sent + NOT_FOUND
        assert samples[("gateway_requests_in_flight", frozenset({("mount", "/")}))] >= 0

    result = gateway_status(config, "--json", "--url", gateway.url + PATH)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mounts"][0]["mount"] == "/"
    assert report["mounts"][0]["requests"] == sent + NOT_FOUND
    assert report["mounts"][0]["error_rate"] == 0.0
    assert report["worker_restarts"] == 0

    table = gateway_status(config, "--url", gateway.url + PATH)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2].split()[:3] == ["/", str(sent + NOT_FOUND), "100.0%"]


def test_a_dead_workers_requests_still_count_and_its_restart_too(
    gateway: GatewayProcess,
) -> None:
    sent = sum(serve_from_both_workers(gateway).values())
    victim = child_pids(gateway.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    gateway.wait_for_line("2 workers ready")  # its replacement
    restarts = ("gateway_worker_restarts_total", frozenset({("reason", "exited")}))
    wait_until(lambda: scrape(gateway).get(restarts) == 1, DEADLINE_S)
    for _ in range(SCRAPES):
        samples = scrape(gateway)
        assert requests(samples, "2xx") == sent
        assert samples[restarts] == 1


def test_the_metrics_directory_is_removed_at_exit(
    gateway: GatewayProcess, metrics_dir_parent: Path
) -> None:
    made = list(metrics_dir_parent.glob("gateway-metrics-*"))
    assert len(made) == 1
    assert list(made[0].glob("*.db")), "the workers write their files there"
    assert gateway.stop() == 0
    assert not made[0].exists()


def test_status_of_a_stopped_server_exits_1(gateway: GatewayProcess, config: Path) -> None:
    url = gateway.url + PATH
    assert gateway.stop() == 0
    result = gateway_status(config, "--url", url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"gateway: cannot read {url}")


def test_a_worker_recycled_by_max_requests_is_counted(tmp_path: Path, config: Path) -> None:
    mount_file(config, f'metrics_path = "{PATH}"\nmax_requests = {RECYCLE_AFTER}')
    gateway = GatewayProcess(config, "--workers", "2", env={"TMPDIR": str(tmp_path)})
    try:
        gateway.wait_for_line("2 workers ready")
        restarts = ("gateway_worker_restarts_total", frozenset({("reason", "max_requests")}))
        sent = 0

        def recycled() -> bool:
            nonlocal sent
            assert sent < MAX_REQUESTS, "no worker was recycled"
            sent += httpx.get(gateway.url + "/pid").status_code == 200
            return scrape(gateway)[restarts] >= 1

        wait_until(recycled, DEADLINE_S)
        assert requests(scrape(gateway), "2xx") == sent
    finally:
        gateway.stop()


def test_a_reload_that_turns_metrics_on(tmp_path: Path, config: Path) -> None:
    mount_file(config, "")
    gateway = GatewayProcess(config, "--workers", "2", env={"TMPDIR": str(tmp_path)})
    try:
        gateway.wait_for_line("2 workers ready")
        assert httpx.get(gateway.url + PATH).status_code == 404  # off: the app's 404
        mount_file(config, f'metrics_path = "{PATH}"')
        gateway.proc.send_signal(signal.SIGHUP)
        started = [gateway.wait_for_line("(generation 2)") for _ in range(2)]
        new = {int(line.split("started worker ")[1].split()[0]) for line in started}
        # Only the new workers count: the old ones, without metrics, must be gone.
        wait_until(lambda: set(child_pids(gateway.proc.pid)) == new, DEADLINE_S)
        answered = serve_from_both_workers(gateway)
        assert set(answered) == new
        sent = sum(answered.values())
        for _ in range(SCRAPES):
            assert requests(scrape(gateway), "2xx") == sent
    finally:
        gateway.stop()


# -- a full or unusable metrics directory (issue 13, point 8) --------------------------

# A tmpfs that holds the supervisor's and two workers' files, reserved (3 files of
# prometheus_client's 64 KiB each per worker, one for the supervisor), with room to spare.
SMALL_TMPFS = "1m"
# Written to fill a disk, in pieces of this size until it says ENOSPC: a page, the unit
# tmpfs allocates in, so the disk is full to the last page when it says so.
FILL_CHUNK_BYTES = 4096


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of SMALL_TMPFS mounted here; skipped where mounting is not permitted."""
    directory = tmp_path / "small"
    directory.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SMALL_TMPFS}", "tmpfs", str(directory)]
    result = subprocess.run(mount, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> None:
    """Write a file until the disk is full."""
    with open(directory / "filler", "ab", buffering=0) as filler:  # no buffer to flush
        try:
            while True:
                filler.write(b"\0" * FILL_CHUNK_BYTES)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def start_refused(config: Path, metrics_dir: Path) -> list[str]:
    """`gateway serve` with PROMETHEUS_MULTIPROC_DIR=metrics_dir, expected to exit 1 at
    start: what it wrote on stderr."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    gateway = GatewayProcess(config, "--workers", "2", env=env)
    try:
        status = gateway.proc.wait(DEADLINE_S)
    finally:
        gateway.stop()
    lines = [line for line in gateway.all_lines() if line.strip()]
    assert status == 1, "".join(lines)
    return lines


def test_a_metrics_directory_that_is_not_one_exits_1_with_one_line(
    tmp_path: Path, config: Path
) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    lines = start_refused(config, not_a_directory)
    assert len(lines) == 1, "".join(lines)
    assert f"metrics directory {not_a_directory}" in lines[0]
    assert "Not a directory" in lines[0]


def test_a_full_metrics_directory_at_start_exits_1_with_one_line(
    small_tmpfs: Path, config: Path
) -> None:
    fill(small_tmpfs)
    lines = start_refused(config, small_tmpfs)
    assert len(lines) == 1, "".join(lines)
    assert f"metrics directory {small_tmpfs}" in lines[0]
    assert "No space left on device" in lines[0]


def test_a_metrics_directory_that_fills_while_serving_drops_metrics_not_workers(
    small_tmpfs: Path, config: Path
) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(small_tmpfs)}
    gateway = GatewayProcess(config, "--workers", "2", env=env)
    try:
        gateway.wait_for_line("2 workers ready")
        serve_from_both_workers(gateway)
        fill(small_tmpfs)
        victims = child_pids(gateway.proc.pid)
        for victim in victims:  # their replacements boot on a full disk
            os.kill(victim, signal.SIGKILL)
            gateway.wait_for_line(f"worker {victim} died unexpectedly")
        wait_until(lambda: len(set(child_pids(gateway.proc.pid)) - set(victims)) == 2)
        gateway.wait_for_line("2 workers ready")
        serve_from_both_workers(gateway)  # both replacements serve
        dropped: tuple[str, frozenset[tuple[str, str]]] = (
            "gateway_metrics_dropped_writes_total",
            frozenset(),
        )
        wait_until(lambda: scrape(gateway).get(dropped, 0) > 0, DEADLINE_S)
        assert gateway.proc.poll() is None
    finally:
        gateway.stop()
    lines = gateway.all_lines()
    assert sum("died unexpectedly" in line for line in lines) == len(victims), "".join(lines)
    assert any("metric writes dropped and counted" in line for line in lines), "".join(lines)
