"""`gateway serve --reload` as a subprocess: an edited app is served, a broken one waits
for its fix, an invalid mount file leaves the server running, TERM or INT stops everything.

Each test writes a small WSGI app into tmp_path/src (the mount file's pythonpath), and
edits it or the mount file while the reloader runs. The reloader starts watching before
it starts the server, so once the server logs "serving on" every later edit is seen.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.paths import APPS_DIR
from support.processes import GATEWAY, GatewayProcess

from gateway.process.reload import server_command, server_environment

DEADLINE_S = 30.0
APP_MODULE = "hello"
# Long enough that the stop signals arrive while the request is in flight.
SLOW_REQUEST_S = 3.0
# The probe app's graceful_timeout: a fast stop ends well within it.
GRACEFUL_S = 10


def write_app(src: Path, body: str) -> None:
    (src / f"{APP_MODULE}.py").write_text(
        "def app(environ, start_response):\n"
        '    start_response("200 OK", [("Content-Type", "text/plain")])\n'
        f"    return [{body.encode()!r}]\n"
    )


def write_config(path: Path, prefix: str = "/", server: str = "") -> None:
    path.write_text(
        f'[server]\npythonpath = ["src"]\ngraceful_timeout = 5\n{server}\n'
        f'[[mount]]\nprefix = "{prefix}"\napp = "{APP_MODULE}:app"\ninterface = "wsgi"\n'
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    write_app(tmp_path / "src", "version 1")
    path = tmp_path / "gateway.toml"
    write_config(path)
    return path


@pytest.fixture
def reloader(config: Path) -> Iterator[GatewayProcess]:
    # No .pyc: an edit within the same second as the last import, keeping the file's
    # size, would otherwise be served from the stale bytecode.
    process = GatewayProcess(config, "--reload", env={"PYTHONDONTWRITEBYTECODE": "1"})
    process.wait_for_line("serving on")
    yield process
    process.stop()


def logged_server(line: str) -> int:
    """The pid in the reloader's "server PID started" line."""
    match = re.search(r"server (\d+) started", line)
    assert match is not None, line
    return int(match[1])


def served(url: str) -> str | None:
    """The response body, or None when a stopping server closed the connection unread.

    A refused connection is not swallowed: the sockets stay open across restarts, so a
    client must never be refused.
    """
    try:
        return httpx.get(url, timeout=DEADLINE_S).text
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return None


def test_an_edited_app_is_served(reloader: GatewayProcess, config: Path) -> None:
    assert served(reloader.url) == "version 1"
    write_app(config.parent / "src", "version 2, edited")
    reloader.wait_for_line(f"reloading: {config.parent / 'src' / APP_MODULE}.py")
    wait_until(lambda: served(reloader.url) == "version 2, edited", DEADLINE_S)
    assert reloader.proc.poll() is None


def test_a_syntax_error_waits_for_the_fix(reloader: GatewayProcess, config: Path) -> None:
    (config.parent / "src" / f"{APP_MODULE}.py").write_text("def app(:\n")
    reloader.wait_for_line("exit status 3); waiting for a change")
    assert reloader.proc.poll() is None, "the reloader must outlive a broken app"
    write_app(config.parent / "src", "fixed")
    reloader.wait_for_line("serving on")
    wait_until(lambda: served(reloader.url) == "fixed", DEADLINE_S)


def test_an_invalid_mount_file_keeps_the_server_until_fixed(
    reloader: GatewayProcess, config: Path
) -> None:
    write_config(config, server="workerz = 2")
    reloader.wait_for_line("not reloading, fix the mount file")
    assert "workerz" in reloader.seen[-1]
    assert served(reloader.url) == "version 1"
    write_config(config, prefix="/moved")
    reloader.wait_for_line("serving on")
    wait_until(lambda: served(reloader.url + "/moved") == "version 1", DEADLINE_S)
    assert httpx.get(reloader.url + "/").status_code == 404


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_or_int_stops_the_server_and_exits_0(config: Path, signum: int) -> None:
    process = GatewayProcess(config, "--reload")
    server_pid = logged_server(process.wait_for_line("started"))
    process.wait_for_line("serving on")
    process.proc.send_signal(signum)  # to the reloader only, as `kill` would
    assert process.proc.wait(DEADLINE_S) == 0
    process.stop()
    assert any(f"server {server_pid} exited (exit status 0)" in x for x in process.all_lines())
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)  # reaped by the reloader: gone, not a zombie or an orphan


def start_probe_reloader(tmp_path: Path, new_session: bool = False) -> GatewayProcess:
    """`--reload` on tests/apps/worker_probe.py, whose slow requests write "sleep-start"
    to tmp_path/probe.log; returned once it serves."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"[server]\npythonpath = [{str(APPS_DIR)!r}]\ngraceful_timeout = {GRACEFUL_S}\n"
        '[[mount]]\nprefix = "/"\napp = "worker_probe:app"\ninterface = "asgi"\n'
    )
    env = {"WORKER_PROBE_LOG": str(tmp_path / "probe.log"), "PYTHONDONTWRITEBYTECODE": "1"}
    process = GatewayProcess(config, "--reload", env=env, new_session=new_session)
    process.wait_for_line("serving on")
    return process


def request_in_flight(url: str, probe_log: Path) -> tuple[threading.Thread, list[str | None]]:
    """A request to worker_probe's /sleep in a thread, returned once the app runs it;
    its `served` outcome lands in the list."""
    outcome: list[str | None] = []
    thread = threading.Thread(target=lambda: outcome.append(served(url)))
    thread.start()
    wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())
    return thread, outcome


def test_one_ctrl_c_to_the_process_group_is_a_graceful_stop(tmp_path: Path) -> None:
    # As a terminal's Ctrl-C: SIGINT to the reloader and to the server (in the reloader's
    # process group) at once; the reloader then stops the server with a SIGTERM of its
    # own, which must not turn the server's graceful stop into a fast one.
    process = start_probe_reloader(tmp_path, new_session=True)
    try:
        server_pid = logged_server(next(x for x in process.seen if "started" in x))
        url = f"{process.url}/sleep?{SLOW_REQUEST_S}"
        thread, outcome = request_in_flight(url, tmp_path / "probe.log")
        os.killpg(process.proc.pid, signal.SIGINT)
        thread.join(DEADLINE_S)
        assert process.proc.wait(DEADLINE_S) == 0
    finally:
        process.stop()
    assert outcome == [str(server_pid)], "".join(process.all_lines())
    assert any(f"server {server_pid} exited (exit status 0)" in x for x in process.all_lines())


def test_a_second_int_to_the_reloader_alone_is_a_fast_stop(tmp_path: Path) -> None:
    process = start_probe_reloader(tmp_path)
    try:
        thread, outcome = request_in_flight(f"{process.url}/sleep?60", tmp_path / "probe.log")
        began = time.monotonic()
        process.proc.send_signal(signal.SIGINT)  # to the reloader only, as `kill` would
        process.wait_for_line("finishing in-flight requests")
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(DEADLINE_S) == 0
        assert time.monotonic() - began < GRACEFUL_S / 2  # not a graceful_timeout wait
        thread.join(DEADLINE_S)
    finally:
        process.stop()
    assert outcome == [None], "".join(process.all_lines())  # cut, not answered


def test_without_watchfiles_it_exits_1_before_binding(config: Path, tmp_path: Path) -> None:
    hidden = tmp_path / "hide" / "watchfiles"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    socket_path = tmp_path / "never.sock"
    result = subprocess.run(
        [*GATEWAY, "serve", str(config), "--reload", "--bind", f"unix:{socket_path}"],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env={**os.environ, "PYTHONPATH": str(hidden.parent)},
    )
    assert result.returncode == 1
    expected = "gateway: --reload needs watchfiles: pip install 'gateway[reload]'\n"
    assert result.stderr == expected
    assert not socket_path.exists()


def test_the_server_gets_the_command_line_settings_but_the_reloaders_sockets() -> None:
    overrides = {
        "bind": ["127.0.0.1:8000"],
        "workers": 2,
        "log_level": "debug",
        "access_log": False,
        "http": "h11",
        "reload": True,
    }
    command = server_command("site.toml", overrides, [5, 6])
    # The reloader runs the server as `python -m gateway`: the package the reloader runs.
    assert command[:5] == [sys.executable, "-m", "gateway", "serve", "site.toml"]
    assert command[5:] == [
        "--workers", "2", "--log-level", "debug", "--no-access-log", "--http", "h11",
        "--bind", "fd://5", "--bind", "fd://6",
    ]  # fmt: skip


def test_the_admin_token_goes_to_the_server_in_its_environment_not_its_command_line() -> None:
    overrides = {"admin_token": "s3cret", "admin_bind": "127.0.0.1:9100"}
    command = server_command("site.toml", overrides, [5])
    assert "s3cret" not in command  # ps shows a command line to every local user
    assert command[5:] == ["--admin-bind", "127.0.0.1:9100", "--bind", "fd://5"]
    assert server_environment(overrides)["GATEWAY_ADMIN_TOKEN"] == "s3cret"
