"""Server hooks (gateway/process/hooks.py) through a real `gateway serve` subprocess.

The hooks module is written for each test: each hook appends a line "NAME PID ..." to
the file named by $HOOK_LOG, so the test sees which hooks ran, in which process, in
which order. The workers' pids come from the probe app (tests/apps/worker_probe.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, wait_until
from support.paths import APPS_DIR
from support.processes import GATEWAY, GatewayProcess

DEADLINE_S = 30.0

RECORDING_HOOKS = """
import os, sys

def _record(*words):
    with open(os.environ["HOOK_LOG"], "a") as log:
        log.write(" ".join(str(w) for w in words) + "\\n")

def on_starting(server):
    _record("on_starting", server.pid, os.getpid(), server.config.server.workers)

def when_ready(server):
    _record("when_ready", server.pid, os.getpid())

def post_fork(worker):
    # With preload, the apps came with the fork: the module is already imported here.
    imported = "worker_probe" in sys.modules
    _record("post_fork", worker.pid, os.getpid(), worker.generation, worker.preloaded, imported)

def worker_exit(worker):
    _record("worker_exit", worker.pid, os.getpid(), worker.generation)

def on_reload(server):
    _record("on_reload", server.pid, os.getpid(), server.config.server.workers)
"""


def write_site(directory: Path, server: str = "", hooks: str = RECORDING_HOOKS) -> Path:
    """A mount file serving the probe app at "/", with `server` lines in [server] and
    the hooks module `site_hooks` (written here) beside it."""
    (directory / "site_hooks.py").write_text(hooks)
    config = directory / "gateway.toml"
    config.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}, {str(directory)!r}]
graceful_timeout = 10
{server}

[[mount]]
prefix = "/"
app = "worker_probe:app"
interface = "asgi"
""")
    return config


def records(path: Path) -> list[list[str]]:
    """The hook calls so far, one list of words per call."""
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines()]


def calls(path: Path, name: str) -> list[list[str]]:
    return [record for record in records(path) if record[0] == name]


@pytest.fixture
def hook_log(tmp_path: Path) -> Path:
    return tmp_path / "hooks.log"


@pytest.fixture
def env(tmp_path: Path, hook_log: Path) -> dict[str, str]:
    return {"HOOK_LOG": str(hook_log), "WORKER_PROBE_LOG": str(tmp_path / "probe.log")}


def test_each_hook_runs_at_its_moment_in_its_process(
    tmp_path: Path, hook_log: Path, env: dict[str, str]
) -> None:
    """workers = 2, a HUP, a stop: the server hooks in the supervisor, post_fork and
    worker_exit once in each worker, on_reload with the new settings."""
    config = write_site(tmp_path, 'hooks = "site_hooks"\nworkers = 2')
    gateway = GatewayProcess(config, env=env)
    try:
        gateway.wait_for_line("2 workers ready")
        wait_until(lambda: len(calls(hook_log, "when_ready")) == 1, DEADLINE_S)
        supervisor = str(gateway.proc.pid)
        assert calls(hook_log, "on_starting") == [["on_starting", supervisor, supervisor, "2"]]
        assert records(hook_log)[0][0] == "on_starting"  # before anything forked
        first = calls(hook_log, "post_fork")
        assert len(first) == 2
        for _, info_pid, own_pid, generation, preloaded, imported in first:
            assert info_pid == own_pid != supervisor
            assert (generation, preloaded, imported) == ("1", "False", "False")
        served = httpx.get(gateway.url + "/pid", timeout=CLIENT_TIMEOUT_S).text
        assert served in {record[1] for record in first}

        config.write_text(config.read_text().replace("workers = 2", "workers = 3"))
        gateway.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(calls(hook_log, "worker_exit")) == 2, DEADLINE_S)
        assert calls(hook_log, "on_reload") == [["on_reload", supervisor, supervisor, "3"]]
        second = [record for record in calls(hook_log, "post_fork") if record[3] == "2"]
        assert len(second) == 3
        old_exits = calls(hook_log, "worker_exit")
        assert sorted(r[1] for r in old_exits) == sorted(r[1] for r in first)
        assert all(r[1] == r[2] and r[3] == "1" for r in old_exits)  # in the worker itself
    finally:
        assert gateway.stop() == 0
    exits = calls(hook_log, "worker_exit")
    assert sorted(r[1] for r in exits) == sorted(r[1] for r in first + second)
    assert len(calls(hook_log, "when_ready")) == 1  # once, not again after the reload


def test_post_fork_follows_the_fork_of_preloaded_apps(
    tmp_path: Path, hook_log: Path, env: dict[str, str]
) -> None:
    """With preload the apps are imported in the supervisor, and post_fork runs in each
    worker after the fork, where a Django site closes the connections it inherited."""
    config = write_site(tmp_path, "workers = 2\npreload = true")
    gateway = GatewayProcess(config, "--hooks", "site_hooks", env=env)
    try:
        gateway.wait_for_line("2 workers ready")
        forks = calls(hook_log, "post_fork")
        assert len(forks) == 2
        for _, info_pid, own_pid, generation, preloaded, imported in forks:
            assert info_pid == own_pid != str(gateway.proc.pid)
            assert (generation, preloaded, imported) == ("1", "True", "True")
    finally:
        assert gateway.stop() == 0


def test_one_worker_runs_the_hooks_of_a_process_that_forks_nothing(
    tmp_path: Path, hook_log: Path, env: dict[str, str]
) -> None:
    """workers = 1: on_starting, when_ready and worker_exit, all in the one process; no
    post_fork (nothing forks) and no on_reload."""
    config = write_site(tmp_path, 'hooks = "site_hooks"')
    gateway = GatewayProcess(config, env=env)
    try:
        gateway.wait_for_line("serving on")
        wait_until(lambda: len(calls(hook_log, "when_ready")) == 1, DEADLINE_S)
    finally:
        assert gateway.stop() == 0
    pid = str(gateway.proc.pid)
    assert [record[:3] for record in records(hook_log)] == [
        ["on_starting", pid, pid],
        ["when_ready", pid, pid],
        ["worker_exit", pid, pid],
    ]


def run_to_exit(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, "serve", str(config), "--bind", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=DEADLINE_S,
    )


@pytest.mark.parametrize(
    ("hooks", "expected"),
    [
        ("raise RuntimeError('no db')", "cannot import 'site_hooks': RuntimeError: no db"),
        ("on_starting = 42", "site_hooks.on_starting is not a function"),
        (
            "def on_starting(server):\n    raise ValueError('bad env')",
            "site_hooks.on_starting failed: ValueError: bad env",
        ),
    ],
    ids=["import", "not-a-function", "on_starting"],
)
def test_a_hook_that_fails_at_start_stops_it_with_one_line(
    tmp_path: Path, env: dict[str, str], hooks: str, expected: str
) -> None:
    config = write_site(tmp_path, 'hooks = "site_hooks"\nworkers = 2', hooks=hooks)
    result = run_to_exit(config, env)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("gateway: ")]
    assert lines == [f"gateway: hooks: {expected}"]
    assert "Traceback" not in result.stderr
    assert "started worker" not in result.stderr  # nothing forked


def test_a_failing_post_fork_is_a_failed_start(tmp_path: Path, env: dict[str, str]) -> None:
    hooks = "def post_fork(worker):\n    raise OSError('cannot reach the database')"
    config = write_site(tmp_path, 'hooks = "site_hooks"\nworkers = 2', hooks=hooks)
    result = run_to_exit(config, env)
    assert result.returncode == 3
    assert "site_hooks.post_fork failed: OSError: cannot reach the database" in result.stderr


def test_a_hook_that_fails_while_serving_is_logged_and_the_server_goes_on(
    tmp_path: Path, hook_log: Path, env: dict[str, str]
) -> None:
    hooks = RECORDING_HOOKS + (
        "\ndef on_reload(server):\n    _record('on_reload')\n    raise KeyError('x')\n"
    )
    config = write_site(tmp_path, 'hooks = "site_hooks"\nworkers = 2', hooks=hooks)
    gateway = GatewayProcess(config, env=env)
    try:
        gateway.wait_for_line("2 workers ready")
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_for_line("site_hooks.on_reload failed; going on")
        gateway.wait_for_line("generation 2 ready")  # the reload went ahead
        response = httpx.get(gateway.url + "/pid", timeout=CLIENT_TIMEOUT_S)
        assert response.status_code == 200
        assert response.text in {r[1] for r in calls(hook_log, "post_fork") if r[3] == "2"}
    finally:
        assert gateway.stop() == 0
