"""`gateway serve --workers N` as a subprocess: the supervisor (gateway/process/supervisor.py).

Each test runs the supervisor and its workers for real, on a socket bound here and passed
with `--bind fd://N`, and drives it with signals and real HTTP clients. Readiness is the
supervisor's "N workers ready" line. The workers are counted from the kernel's list of
the supervisor's children, and told apart by the pid the test app answers with
(tests/apps/worker_probe.py). Load comes from threads with one keep-alive httpx client
each, bounded in requests and in time.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.processes import GatewayProcess, child_pids, mount_file

DEADLINE_S = 30.0
# Long enough for a request in flight to be caught by a signal, short enough for the run.
SLOW_REQUEST_S = 3.0
# The load: this many clients, each stopping after MAX_REQUESTS_EACH requests or
# LOAD_LIMIT_S seconds, whichever comes first.
LOAD_CLIENTS = 20
MAX_REQUESTS_EACH = 2000
LOAD_LIMIT_S = 60.0
# Requests answered before, between and after reloads: a second or so each, here.
LOAD_BETWEEN_RELOADS = 1000
# A killed worker's replacement starts within this long of the kill: the issue asks for
# about a second, and a busy machine gets the second one.
REPLACED_WITHIN_S = 2.0
# Workers whose max_requests jitter is compared: all 6 drawing the same of 11 values
# happens once in 11**5 (about 160,000) runs.
JITTER_WORKERS = 6

StartGateway = Callable[..., GatewayProcess]


@pytest.fixture
def probe_log(tmp_path: Path) -> Path:
    """Where worker_probe writes "EVENT PID" lines: startup, sleep-start, shutdown..."""
    return tmp_path / "probe.log"


@pytest.fixture
def start(tmp_path: Path, probe_log: Path) -> Iterator[StartGateway]:
    """`start(server_settings, *cli_args, app=...)`: a gateway with 2 workers on the probe
    app at "/", stopped after the test."""
    processes: list[GatewayProcess] = []

    def run(server: str = "", *args: str, app: str = "worker_probe:app") -> GatewayProcess:
        config = mount_file(tmp_path / "gateway.toml", server, app=app)
        env = {"WORKER_PROBE_LOG": str(probe_log)}
        process = GatewayProcess(config, "--workers", "2", *args, env=env)
        processes.append(process)
        return process

    yield run
    for process in processes:
        process.stop()


def mount_at(prefix: str, app: str = "worker_probe:app") -> str:
    return f'[[mount]]\nprefix = "{prefix}"\napp = "{app}"\ninterface = "asgi"\n'


def logged_pid(line: str) -> int:
    """The pid of the process that logged `line` (the log format's "[PID]")."""
    match = re.search(r"\[(\d+)\]", line)
    assert match is not None, line
    return int(match.group(1))


def workers_of(gateway: GatewayProcess) -> list[int]:
    return child_pids(gateway.proc.pid)


def events(log: Path, event: str) -> list[int]:
    """The pids that wrote `event` to the probe log, in order."""
    if not log.exists():
        return []
    return [
        int(pid)
        for name, pid in (line.split() for line in log.read_text().splitlines())
        if name == event
    ]


def answering_pid(gateway: GatewayProcess, path: str = "/pid") -> int:
    """One request on a new connection: which worker accepted it."""
    response = httpx.get(gateway.url + path, timeout=DEADLINE_S)
    assert response.status_code == 200
    return int(response.text)


def started_pid(line: str) -> int:
    """The pid in the supervisor's "started worker PID (generation G)" line."""
    match = re.search(r"started worker (\d+)", line)
    assert match is not None, line
    return int(match.group(1))


class Load:
    """Clients in threads, each with one keep-alive httpx client, requesting `path` until
    stopped (or their bound is reached); they count successes, failures and pids."""

    def __init__(self, url: str, clients: int = LOAD_CLIENTS) -> None:
        self.url = url
        self.done = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._end = time.monotonic() + LOAD_LIMIT_S
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE_S)

    def _client(self) -> None:
        with httpx.Client(timeout=DEADLINE_S) as client:
            for _ in range(MAX_REQUESTS_EACH):
                if self._stop.is_set() or time.monotonic() > self._end:
                    return
                self._request(client)

    def _request(self, client: httpx.Client) -> None:
        try:
            response = client.get(self.url)
        except httpx.HTTPError as exc:
            with self._lock:
                self.failures.append(repr(exc))
            return
        with self._lock:
            if response.status_code == 200:
                self.done += 1
                self.pids.add(int(response.text))
            else:
                self.failures.append(f"status {response.status_code}")

    def wait_for(self, more: int) -> None:
        """Wait until `more` requests beyond those done so far have succeeded."""
        target = self.done + more
        wait_until(lambda: self.done >= target or bool(self.failures), DEADLINE_S)


def slow_requests(url: str, count: int) -> tuple[list[threading.Thread], list[object]]:
    """`count` requests in threads, each on a new connection; each outcome (the response
    or the exception) is appended to the list."""
    outcomes: list[object] = []

    def fetch() -> None:
        try:
            outcomes.append(httpx.get(url, timeout=DEADLINE_S))
        except httpx.HTTPError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(DEADLINE_S)
        assert not thread.is_alive(), "a request did not end"


# -- 1. a worker killed with SIGKILL is replaced --------------------------------------


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(
    start: StartGateway, probe_log: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    threads, outcomes = slow_requests(f"{gateway.url}/sleep?{SLOW_REQUEST_S}", 6)
    wait_until(lambda: len(events(probe_log, "sleep-start")) == 6)
    victim, survivor = workers_of(gateway)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    gateway.wait_for_line(f"worker {victim} died unexpectedly", REPLACED_WITHIN_S)
    replacement = started_pid(gateway.wait_for_line("started worker", REPLACED_WITHIN_S))
    assert time.monotonic() - killed_at < REPLACED_WITHIN_S
    for _ in range(20):  # meanwhile, and after: every new request is answered
        assert answering_pid(gateway) in (survivor, replacement)
    join_all(threads)
    answered = [int(o.text) for o in outcomes if isinstance(o, httpx.Response)]
    assert set(answered) <= {survivor}
    assert len(outcomes) - len(answered) == events(probe_log, "sleep-start").count(victim)
    wait_until(lambda: answering_pid(gateway) == replacement)
    assert sorted(workers_of(gateway)) == sorted([survivor, replacement])


# -- 2. and 3. SIGHUP reloads the mount file, or refuses a broken one -----------------


def test_hups_under_load_swap_workers_without_a_failed_request(
    start: StartGateway, tmp_path: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    generations = [set(workers_of(gateway))]
    with Load(gateway.url + "/pid") as load:
        load.wait_for(LOAD_BETWEEN_RELOADS)
        for number in (2, 3, 4):  # a few reloads in a row: several seconds of load
            mount_file(tmp_path / "gateway.toml", extra_mounts=mount_at(f"/v{number}"))
            gateway.proc.send_signal(signal.SIGHUP)
            gateway.wait_for_line(f"generation {number} ready")

            def old_workers_gone(old: set[int] = generations[-1]) -> bool:
                return not old & set(workers_of(gateway))

            wait_until(old_workers_gone)
            generations.append(set(workers_of(gateway)))
            load.wait_for(LOAD_BETWEEN_RELOADS)
    assert load.failures == []
    assert load.pids <= set().union(*generations)
    assert load.pids & generations[-1], "no request reached the last generation"
    assert answering_pid(gateway, "/v4/pid") in generations[-1]
    assert httpx.get(gateway.url + "/v3/pid", timeout=DEADLINE_S).status_code == 404


def test_a_second_hup_while_the_first_boots_ends_with_the_last_file(
    start: StartGateway, tmp_path: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    first = set(workers_of(gateway))
    mount_file(tmp_path / "gateway.toml", extra_mounts=mount_at("/v2", "worker_probe:slow_start"))
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("reloading")
    mount_file(tmp_path / "gateway.toml", extra_mounts=mount_at("/v3"))
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("stopping generation 2, not ready yet")
    gateway.wait_for_line("generation 3 ready")
    wait_until(lambda: len(workers_of(gateway)) == 2 and not first & set(workers_of(gateway)))
    assert answering_pid(gateway, "/v3/pid") in workers_of(gateway)


def test_hup_to_an_app_that_fails_at_boot_keeps_the_old_workers(
    start: StartGateway, tmp_path: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    before = sorted(workers_of(gateway))
    broken = mount_at("/v2", "failing_apps:lifespan_fails")
    mount_file(tmp_path / "gateway.toml", extra_mounts=broken)
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("keeping the old workers")
    wait_until(lambda: sorted(workers_of(gateway)) == before)
    for _ in range(10):
        assert answering_pid(gateway) in before
    assert gateway.proc.poll() is None


def test_a_slow_preload_on_hup_kills_no_worker_for_silence(
    start: StartGateway, tmp_path: Path
) -> None:
    # The supervisor imports the apps itself (preload) and is busy meanwhile, longer than
    # worker_timeout: the workers' beats wait in their pipes, and are not silence.
    settings = "preload = true\nworker_timeout = 1"
    gateway = start(settings, app="worker_probe:slow_factory()")
    gateway.wait_for_line("2 workers ready")
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("generation 2 ready")
    assert not any("silent for" in line for line in gateway.all_lines())


def test_hup_with_a_broken_file_keeps_the_old_workers(start: StartGateway, tmp_path: Path) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    before = sorted(workers_of(gateway))
    (tmp_path / "gateway.toml").write_text('[server]\nworkerz = 2\n[[mount]]\nprefix = "/"\n')
    gateway.proc.send_signal(signal.SIGHUP)
    line = gateway.wait_for_line("reload refused")
    assert "workerz" in line
    for _ in range(10):
        assert answering_pid(gateway) in before
    assert sorted(workers_of(gateway)) == before


def test_a_hup_during_a_reload_supersedes_it_and_a_failure_keeps_the_serving_workers(
    start: StartGateway, tmp_path: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    first = sorted(workers_of(gateway))
    mount_file(tmp_path / "gateway.toml", extra_mounts=mount_at("/v2", "worker_probe:slow_start"))
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("reloading")
    broken = mount_at("/v3", "failing_apps:lifespan_fails")
    mount_file(tmp_path / "gateway.toml", extra_mounts=broken)
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("keeping the old workers")
    wait_until(lambda: sorted(workers_of(gateway)) == first)
    assert answering_pid(gateway) in first
    assert httpx.get(gateway.url + "/v2/pid", timeout=DEADLINE_S).status_code == 404


def test_term_while_a_reload_drains_the_old_workers_lets_them_finish(
    start: StartGateway, tmp_path: Path, probe_log: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    threads, outcomes = slow_requests(f"{gateway.url}/sleep?{SLOW_REQUEST_S}", 4)
    wait_until(lambda: len(events(probe_log, "sleep-start")) == 4)
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_line("generation 2 ready")  # the old workers are draining now
    gateway.proc.send_signal(signal.SIGTERM)  # not a second TERM for those
    join_all(threads)
    assert [getattr(o, "status_code", o) for o in outcomes] == [200] * 4
    assert gateway.proc.wait(DEADLINE_S) == 0


# -- 4. SIGTERM: a graceful stop ------------------------------------------------------


def test_term_under_load_finishes_in_flight_requests_and_runs_lifespan_shutdown(
    start: StartGateway, probe_log: Path
) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    workers = sorted(workers_of(gateway))
    threads, outcomes = slow_requests(f"{gateway.url}/sleep?{SLOW_REQUEST_S}", 8)
    wait_until(lambda: len(events(probe_log, "sleep-start")) == 8)
    gateway.proc.send_signal(signal.SIGTERM)
    join_all(threads)
    assert [getattr(o, "status_code", o) for o in outcomes] == [200] * 8
    assert gateway.proc.wait(DEADLINE_S) == 0
    assert sorted(events(probe_log, "startup")) == workers
    assert sorted(events(probe_log, "shutdown")) == workers


# -- 5. a stuck event loop ------------------------------------------------------------


def test_a_worker_whose_loop_is_stuck_is_killed_after_worker_timeout(
    start: StartGateway, probe_log: Path
) -> None:
    gateway = start("worker_timeout = 2")
    gateway.wait_for_line("2 workers ready")
    sent_at = time.monotonic()
    threads, outcomes = slow_requests(gateway.url + "/block?30", 1)
    wait_until(lambda: len(events(probe_log, "block-start")) == 1)
    stuck = events(probe_log, "block-start")[0]
    gateway.wait_for_line(f"worker {stuck} silent for 2 s")
    # Its last beat came at most a beat interval (0.5 s) before the loop blocked, so not
    # before 1.5 s; and not long after worker_timeout either.
    assert 1.5 <= time.monotonic() - sent_at < 10
    replacement = started_pid(gateway.wait_for_line("started worker"))
    join_all(threads)
    assert isinstance(outcomes[0], httpx.HTTPError)
    gateway.wait_for_line("2 workers ready")
    assert stuck not in workers_of(gateway)
    wait_until(lambda: answering_pid(gateway) == replacement)


def test_a_stopping_worker_past_its_bound_is_killed_and_its_exit_expected(
    start: StartGateway, probe_log: Path
) -> None:
    """A worker whose loop is stuck when the TERM comes never takes it: past
    graceful_timeout and the stop margin it is killed, once, and the kill is the stop's
    end, not a failure (gateway/process/ending.py: STOPPING, then KILLED)."""
    gateway = start("worker_timeout = 120", "--graceful-timeout", "1")
    gateway.wait_for_line("2 workers ready")
    threads, _ = slow_requests(gateway.url + "/block?60", 1)
    wait_until(lambda: len(events(probe_log, "block-start")) == 1)
    stuck = events(probe_log, "block-start")[0]
    gateway.proc.send_signal(signal.SIGTERM)
    gateway.wait_for_line(f"worker {stuck} did not stop in time: killing")
    assert gateway.proc.wait(DEADLINE_S) == 0
    join_all(threads)
    lines = gateway.all_lines()
    assert any(f"worker {stuck} exited (killed by SIGKILL)" in line for line in lines)
    assert not any("died unexpectedly" in line for line in lines)


# -- 6. max_requests ------------------------------------------------------------------


def test_max_requests_recycles_workers_without_a_failed_request(start: StartGateway) -> None:
    gateway = start("max_requests = 50\nmax_requests_jitter = 10")
    gateway.wait_for_line("2 workers ready")
    first = set(workers_of(gateway))
    with Load(gateway.url + "/pid", clients=8) as load:
        wait_until(lambda: len(load.pids - first) >= 2 or bool(load.failures))
    assert load.failures == []
    retiring = logged_pid(gateway.wait_for_line("asking for a replacement"))
    gateway.wait_for_line(f"worker {retiring} exited")
    wait_until(lambda: len(workers_of(gateway)) == 2)
    assert gateway.proc.poll() is None
    assert_replaced_before_stopped(gateway.all_lines(), retiring)


def line_index(lines: list[str], *parts: str) -> int:
    """The index of the first line that contains every one of `parts`."""
    found = [i for i, line in enumerate(lines) if all(part in line for part in parts)]
    assert found, f"no line with {parts}: {''.join(lines)}"
    return found[0]


def assert_replaced_before_stopped(lines: list[str], retiring: int) -> None:
    """Between `retiring` asking for its replacement and its being told to stop, a new
    worker started and became ready (gateway/process/supervisor.py, rule "RETIRE")."""
    asked = line_index(lines, f"[{retiring}]", "asking for a replacement")
    stopped = line_index(lines, f"[{retiring}]", "finishing in-flight requests")
    between = lines[asked:stopped]
    started = [started_pid(line) for line in between if "started worker" in line]
    ready = [pid for pid in started if any(f"worker {pid} ready" in x for x in between)]
    assert ready, "".join(lines)


def test_max_requests_jitter_spreads_the_workers_limits(tmp_path: Path) -> None:
    config = mount_file(tmp_path / "gateway.toml", "max_requests = 50\nmax_requests_jitter = 10")
    gateway = GatewayProcess(config, "--workers", str(JITTER_WORKERS))
    try:
        gateway.wait_for_line(f"{JITTER_WORKERS} workers ready")
    finally:
        assert gateway.stop() == 0
    limits = {
        logged_pid(line): int(match[1])
        for line in gateway.all_lines()
        if (match := re.search(r"recycling after (\d+) requests", line))
    }
    assert len(limits) == JITTER_WORKERS, limits
    assert all(50 <= limit <= 60 for limit in limits.values()), limits
    assert len(set(limits.values())) > 1, limits


def test_a_retiring_worker_stops_even_if_its_replacement_dies_booting(
    start: StartGateway,
) -> None:
    gateway = start("max_requests = 20", app="worker_probe:slow_start")
    gateway.wait_for_line("2 workers ready")
    with httpx.Client(timeout=DEADLINE_S) as client:  # one connection: one worker
        for _ in range(25):
            assert client.get(gateway.url + "/pid").status_code == 200
    retiring = logged_pid(gateway.wait_for_line("asking for a replacement"))
    replacement = started_pid(gateway.wait_for_line("started worker"))
    os.kill(replacement, signal.SIGKILL)  # while its lifespan startup still runs
    gateway.wait_for_line(f"worker {replacement} died unexpectedly")
    wait_until(lambda: retiring not in workers_of(gateway) and len(workers_of(gateway)) == 2)


# -- 7. an app that fails at boot -----------------------------------------------------


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("broken_import:app", "boom while importing broken_import"),
        ("failing_apps:lifespan_fails", "database unreachable"),
    ],
)
@pytest.mark.parametrize("preload", [False, True])
def test_an_app_that_fails_at_boot_stops_the_server_with_3(
    tmp_path: Path, app: str, message: str, preload: bool
) -> None:
    config = mount_file(tmp_path / "gateway.toml", f"preload = {str(preload).lower()}", app=app)
    gateway = GatewayProcess(config, "--workers", "2")
    began = time.monotonic()
    try:
        status = gateway.proc.wait(DEADLINE_S)
    finally:
        gateway.stop()
    assert status == 3
    assert time.monotonic() - began < 15
    lines = gateway.all_lines()
    assert any(message in line for line in lines), "".join(lines)
    # No respawn: the workers started once (or never, when the supervisor's own import
    # of the app failed).
    started = 0 if preload and app == "broken_import:app" else 2
    assert sum("started worker" in line for line in lines) == started, "".join(lines)


def test_workers_that_keep_crashing_stop_the_server_with_3(tmp_path: Path) -> None:
    # Each worker boots, then dies with exit status 1: respawned every time, until the
    # crash-loop guard counts CRASH_LIMIT exits within its window and stops the server.
    config = mount_file(tmp_path / "gateway.toml", app="crashing_app:app")
    gateway = GatewayProcess(config, "--workers", "2")
    try:
        status = gateway.proc.wait(DEADLINE_S)
    finally:
        gateway.stop()
    lines = gateway.all_lines()
    assert status == 3, "".join(lines)
    assert any("exits in" in line for line in lines), "".join(lines)
    assert sum("died unexpectedly" in line for line in lines) >= 5, "".join(lines)


# -- 8. TTIN and TTOU -----------------------------------------------------------------


def test_ttin_and_ttou_add_and_remove_a_worker(start: StartGateway) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    gateway.proc.send_signal(signal.SIGTTIN)
    wait_until(lambda: len(workers_of(gateway)) == 3)
    gateway.wait_for_line("3 workers ready")
    for expected in (2, 1):
        gateway.proc.send_signal(signal.SIGTTOU)

        def workers_left(expected: int = expected) -> bool:
            return len(workers_of(gateway)) == expected

        wait_until(workers_left)
    gateway.proc.send_signal(signal.SIGTTOU)  # never below one worker
    gateway.wait_for_line("TTOU ignored")
    assert len(workers_of(gateway)) == 1
    assert answering_pid(gateway) == workers_of(gateway)[0]


# -- 9. SIGINT twice, SIGUSR1 ---------------------------------------------------------


def test_a_second_sigint_is_a_fast_stop(start: StartGateway, probe_log: Path) -> None:
    gateway = start()
    gateway.wait_for_line("2 workers ready")
    threads, outcomes = slow_requests(gateway.url + "/sleep?60", 2)
    wait_until(lambda: len(events(probe_log, "sleep-start")) == 2)
    began = time.monotonic()
    gateway.proc.send_signal(signal.SIGINT)
    gateway.wait_for_line("stopping 2 workers gracefully")
    gateway.wait_for_line("finishing in-flight requests")
    gateway.proc.send_signal(signal.SIGINT)
    assert gateway.proc.wait(DEADLINE_S) == 0
    assert time.monotonic() - began < 10
    join_all(threads)
    assert all(isinstance(outcome, httpx.HTTPError) for outcome in outcomes)
    assert workers_of(gateway) == []


def logs_to(gateway: GatewayProcess, log: Path, pids: set[int]) -> bool:
    """Whether each of `pids` has written to `log` (asking one worker per call)."""
    answering_pid(gateway, "/log")
    return all(f"worker_probe log line from {pid}" in log.read_text() for pid in pids)


def test_usr1_reopens_the_log_files(start: StartGateway, tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    gateway = start(f"log_file = {str(error_log)!r}\naccess_log_file = {str(access_log)!r}")
    wait_until(lambda: error_log.exists() and "2 workers ready" in error_log.read_text())
    workers = set(workers_of(gateway))
    error_log.rename(tmp_path / "error.log.1")
    access_log.rename(tmp_path / "access.log.1")
    gateway.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: error_log.exists() and access_log.exists())
    wait_until(lambda: logs_to(gateway, error_log, workers))
    assert "GET /log" in access_log.read_text()
    gateway.proc.send_signal(signal.SIGTTIN)  # the supervisor logs on
    wait_until(lambda: f"[{gateway.proc.pid}]" in error_log.read_text())


def test_usr1_while_workers_import_their_apps(
    start: StartGateway, tmp_path: Path, probe_log: Path
) -> None:
    error_log = tmp_path / "error.log"
    gateway = start(f"log_file = {str(error_log)!r}", app="slow_import:app")
    wait_until(lambda: len(events(probe_log, "import-begin")) == 2)
    error_log.rename(tmp_path / "error.log.1")
    gateway.proc.send_signal(signal.SIGUSR1)  # neither kills them nor is lost
    wait_until(lambda: error_log.exists() and "2 workers ready" in error_log.read_text())
    workers = set(workers_of(gateway))
    wait_until(lambda: logs_to(gateway, error_log, workers))
    assert "died unexpectedly" not in error_log.read_text()
    assert "died unexpectedly" not in (tmp_path / "error.log.1").read_text()


# -- 10. preload ----------------------------------------------------------------------


def test_preload_serves_from_every_worker(start: StartGateway, probe_log: Path) -> None:
    gateway = start("preload = true")
    gateway.wait_for_line("2 workers ready")
    workers = sorted(workers_of(gateway))
    # Imported once, by the supervisor, before it forked the workers.
    assert events(probe_log, "import") == [gateway.proc.pid]
    assert gateway.proc.pid not in workers
    assert sorted(events(probe_log, "startup")) == workers
    seen: set[int] = set()

    def every_worker_answered() -> bool:
        seen.add(answering_pid(gateway))
        return seen == set(workers)

    wait_until(every_worker_answered)
    assert gateway.stop() == 0
    assert sorted(events(probe_log, "shutdown")) == workers


# -- 11. every connection is drained; max_requests per request (issue 13, point 9) -----

# The graceful_timeout of the reload runs: short, so a connection the drain
# missed is cut while its client still uses it, instead of living on to a late close.
SHORT_GRACEFUL_TIMEOUT_S = 2
# Pipelined past max_requests on one connection: the limit, then some more that the
# retiring worker serves while its replacement boots.
PIPELINED_LIMIT = 50
PIPELINED_REQUESTS = 60


def start_from(config: Path) -> GatewayProcess:
    env = {"WORKER_PROBE_LOG": str(config.parent / "probe.log")}
    return GatewayProcess(config, "--workers", "2", env=env)


def test_hups_under_keep_alive_load_with_a_short_graceful_timeout_fail_nothing(
    tmp_path: Path,
) -> None:
    config = mount_file(tmp_path / "gateway.toml")
    short = f"graceful_timeout = {SHORT_GRACEFUL_TIMEOUT_S}"
    config.write_text(config.read_text().replace("graceful_timeout = 10", short))
    gateway = start_from(config)
    try:
        gateway.wait_for_line("2 workers ready")
        with Load(gateway.url + "/pid") as load:
            load.wait_for(LOAD_BETWEEN_RELOADS)
            for number in (2, 3, 4, 5):
                gateway.proc.send_signal(signal.SIGHUP)
                gateway.wait_for_line(f"generation {number} ready")
                load.wait_for(LOAD_BETWEEN_RELOADS)
        assert load.failures == []
    finally:
        assert gateway.stop() == 0


def test_max_requests_under_keep_alive_load_with_a_short_graceful_timeout_fails_nothing(
    tmp_path: Path,
) -> None:
    config = mount_file(tmp_path / "gateway.toml", "max_requests = 50\nmax_requests_jitter = 10")
    short = f"graceful_timeout = {SHORT_GRACEFUL_TIMEOUT_S}"
    config.write_text(config.read_text().replace("graceful_timeout = 10", short))
    gateway = start_from(config)
    try:
        gateway.wait_for_line("2 workers ready")
        first = set(workers_of(gateway))
        with Load(gateway.url + "/pid", clients=8) as load:
            # Several generations of recycled workers, each drained under load.
            wait_until(lambda: len(load.pids - first) >= 6 or bool(load.failures))
        assert load.failures == []
    finally:
        assert gateway.stop() == 0


def test_max_requests_retires_at_the_request_that_reaches_it(tmp_path: Path) -> None:
    limits = f"max_requests = {PIPELINED_LIMIT}\nmax_requests_jitter = 0"
    gateway = start_from(mount_file(tmp_path / "gateway.toml", limits))
    try:
        gateway.wait_for_line("2 workers ready")
        request = b"GET /log HTTP/1.1\r\nhost: x\r\n\r\n"
        port = int(gateway.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
            sock.sendall(request * PIPELINED_REQUESTS)  # one connection: one worker
            answered = read_responses(sock, PIPELINED_REQUESTS)
        assert answered == PIPELINED_REQUESTS
        retiring = logged_pid(gateway.wait_for_line("asking for a replacement"))
    finally:
        assert gateway.stop() == 0
    lines = gateway.all_lines()
    asked = line_index(lines, f"[{retiring}]", "asking for a replacement")
    # Each /log request writes a line before it is answered; the worker must ask for its
    # replacement as the PIPELINED_LIMIT-th ends, not at its next heartbeat, which comes
    # after whatever it served in between (all 60 requests take a few milliseconds).
    served_before = [line for line in lines[:asked] if f"log line from {retiring}" in line]
    assert len(served_before) == PIPELINED_LIMIT, "".join(lines)


def read_responses(sock: socket.socket, count: int) -> int:
    """Read until `count` responses have come (each ends with the probe's pid as body,
    so the status lines are counted), or the deadline passes; how many came."""
    received = b""
    end = time.monotonic() + DEADLINE_S
    while received.count(b"HTTP/1.1 200") < count and time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
    return received.count(b"HTTP/1.1 200")
