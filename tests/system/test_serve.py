"""`gateway serve` and `gateway check` as subprocesses: start, answer, stop, exit codes.

The test binds 127.0.0.1:0 itself and hands the listening socket to the server with
`--bind fd://N`; readiness is the server's own "serving on" log line.
"""

from __future__ import annotations

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
from support.processes import GATEWAY, GatewayProcess, child_pids

DEADLINE_S = 30.0


@pytest.fixture
def probe_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
graceful_timeout = 10

[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"

[[mount]]
prefix = "/"
app = "probe_wsgi:app"
interface = "wsgi"
""")
    return path


@pytest.fixture
def gateway(probe_config: Path, tmp_path: Path) -> Iterator[GatewayProcess]:
    log = tmp_path / "lifespan.log"
    process = GatewayProcess(probe_config, env={"PROBE_LIFESPAN_LOG": str(log)})
    yield process
    process.stop()


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_serve_starts_and_answers(gateway: GatewayProcess) -> None:
    gateway.wait_for_line("serving on")
    assert httpx.get(gateway.url + "/asgi/echo").status_code == 200
    assert httpx.get(gateway.url + "/environ").json()["SCRIPT_NAME"] == ""


def test_sigterm_drains_in_flight_requests_then_runs_lifespan_shutdown(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    gateway.wait_for_line("serving on")
    log = tmp_path / "lifespan.log"
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(
        target=lambda: result.update(r=httpx.get(gateway.url + "/asgi/sleep?1", timeout=20))
    )
    request.start()
    wait_until(lambda: "sleep-start" in log.read_text())
    gateway.proc.send_signal(signal.SIGTERM)
    request.join(DEADLINE_S)
    assert result["r"].status_code == 200 and result["r"].text == "slept"
    assert gateway.proc.wait(DEADLINE_S) == 0
    assert log.read_text().split() == ["startup", "sleep-start", "sleep-end", "shutdown"]


def test_bad_config_exits_1_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nworkerz = 2\n\n[[mount]]\nprefix = "/"\napp = "x:y"\n')
    result = run("serve", str(config))
    assert result.returncode == 1
    assert "bad.toml" in result.stderr and "[server]" in result.stderr
    assert "workerz" in result.stderr
    assert "Traceback" not in result.stderr


def one_mount_config(directory: Path, app: str, server: str = "", interface: str = "asgi") -> Path:
    """A mount file with one app at "/", on an OS-chosen port, from tests/apps."""
    config = directory / "gateway.toml"
    config.write_text(
        f'[server]\nbind = ["127.0.0.1:0"]\npythonpath = [{str(APPS_DIR)!r}]\n{server}\n'
        f'[[mount]]\nprefix = "/"\napp = "{app}"\ninterface = "{interface}"\n'
    )
    return config


def test_one_worker_serves_in_the_gateway_process_itself(tmp_path: Path) -> None:
    # workers = 1 (the default) is container mode: no supervisor, no forked worker.
    gateway = GatewayProcess(one_mount_config(tmp_path, "worker_probe:app"))
    try:
        gateway.wait_for_line("serving on")
        response = httpx.get(gateway.url + "/pid", timeout=DEADLINE_S)
        assert int(response.text) == gateway.proc.pid
        assert child_pids(gateway.proc.pid) == []
    finally:
        assert gateway.stop() == 0


def test_app_that_fails_to_import_exits_3(tmp_path: Path) -> None:
    result = run("serve", str(one_mount_config(tmp_path, "broken_import:app")))
    assert result.returncode == 3
    assert "boom while importing broken_import" in result.stderr


def test_lifespan_startup_failure_exits_3_with_the_apps_message(tmp_path: Path) -> None:
    result = run("serve", str(one_mount_config(tmp_path, "failing_apps:lifespan_fails")))
    assert result.returncode == 3
    assert "database unreachable" in result.stderr


def test_check_prints_the_routing_table(probe_config: Path) -> None:
    result = run("check", str(probe_config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["/asgi", "asgi"] for line in lines)
    assert any(line.split() == ["/", "wsgi", "probe_wsgi:app", "10"] for line in lines)


def test_check_fails_with_1_on_an_unimportable_app(tmp_path: Path) -> None:
    result = run("check", str(one_mount_config(tmp_path, "broken_import:app")))
    assert result.returncode == 1
    assert "boom while importing" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("gateway ")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "gateway"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("gateway ")


def test_no_access_log_flag(probe_config: Path) -> None:
    quiet = GatewayProcess(probe_config, "--no-access-log")
    try:
        quiet.wait_for_line("serving on")
        assert httpx.get(quiet.url + "/asgi/echo").status_code == 200
    finally:
        assert quiet.stop() == 0
    assert not any("GET /asgi/echo" in line for line in quiet.stdout)


def test_access_log_names_the_mount(probe_config: Path) -> None:
    loud = GatewayProcess(probe_config)
    try:
        loud.wait_for_line("serving on")
        assert httpx.get(loud.url + "/asgi/echo").status_code == 200
    finally:
        assert loud.stop() == 0
    line = next(x for x in loud.stdout if "/asgi/echo" in x)
    assert '"GET /asgi/echo HTTP/1.1" 200' in line and "mount=/asgi" in line
    assert line.startswith("127.0.0.1:")


def slow_request(url: str) -> tuple[threading.Thread, dict[str, object]]:
    """A request in a thread; the outcome (response or exception) lands in the dict."""
    outcome: dict[str, object] = {}

    def fetch() -> None:
        try:
            outcome["response"] = httpx.get(url, timeout=60)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread, outcome


def test_second_sigint_is_a_fast_stop(gateway: GatewayProcess, tmp_path: Path) -> None:
    gateway.wait_for_line("serving on")
    thread, outcome = slow_request(gateway.url + "/asgi/sleep?30")
    wait_until(lambda: "sleep-start" in (tmp_path / "lifespan.log").read_text())
    started = time.monotonic()
    gateway.proc.send_signal(signal.SIGINT)
    gateway.wait_for_line("finishing in-flight requests")
    gateway.proc.send_signal(signal.SIGINT)
    assert gateway.proc.wait(DEADLINE_S) == 0
    assert time.monotonic() - started < 10
    thread.join(DEADLINE_S)
    assert "error" in outcome  # the slow request was cut, not answered


def test_graceful_timeout_bounds_the_drain_even_for_a_stuck_wsgi_view(tmp_path: Path) -> None:
    config = one_mount_config(tmp_path, "probe_wsgi:app", "graceful_timeout = 1", "wsgi")
    log = tmp_path / "probe.log"
    process = GatewayProcess(config, env={"PROBE_LIFESPAN_LOG": str(log)})
    process.wait_for_line("serving on")
    thread, outcome = slow_request(process.url + "/sleep?30")
    wait_until(lambda: log.exists() and "wsgi-sleep-start" in log.read_text())
    started = time.monotonic()
    assert process.stop() == 0
    assert time.monotonic() - started < 10
    thread.join(DEADLINE_S)
    assert "error" in outcome


def test_app_tracebacks_go_to_the_error_log_not_the_client(gateway: GatewayProcess) -> None:
    gateway.wait_for_line("serving on")
    response = httpx.get(gateway.url + "/raise")
    assert response.status_code == 500
    assert "secret" not in response.text
    gateway.wait_for_line("Traceback")
    gateway.wait_for_line("RuntimeError: secret wsgi detail")


def test_log_level_flag_overrides_the_file(probe_config: Path) -> None:
    quiet = GatewayProcess(probe_config, "--log-level", "warning")
    try:
        assert httpx.get(quiet.url + "/asgi/echo", timeout=30).status_code == 200
    finally:
        assert quiet.stop() == 0
    assert not any("serving on" in line for line in quiet.all_lines())


def test_usage_errors_exit_1() -> None:
    for args in (("serve",), ("--no-such-flag",), ("serve", "x.toml", "--workers", "many")):
        result = run(*args)
        assert result.returncode == 1, args
        assert "usage:" in result.stderr


def test_a_users_own_adapters_module_is_not_the_gateways(tmp_path: Path) -> None:
    """The gateway's WSGI bridge is installed as gateway.adapters: a user's `adapters`
    module on pythonpath neither breaks the gateway nor is replaced by it."""
    (tmp_path / "adapters.py").write_text("GREETING = b'from the users adapters'\n")
    (tmp_path / "site_app.py").write_text(
        "import adapters\n\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [adapters.GREETING]\n"
    )
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"[server]\npythonpath = [{str(tmp_path)!r}]\n\n"
        '[[mount]]\nprefix = "/"\napp = "site_app:app"\ninterface = "wsgi"\n'
    )
    assert run("check", str(config), cwd=tmp_path).returncode == 0
    process = GatewayProcess(config)
    try:
        process.wait_for_line("serving on")
        assert httpx.get(process.url + "/").content == b"from the users adapters"
    finally:
        process.stop()


# ---------------------------------------------- mistakes that fail at load (issue 13, point 10)

FLASK_SITE = "from flask import Flask\n\napp = Flask(__name__)\n"
FASTAPI_SITE = "from fastapi import FastAPI\n\napp = FastAPI()\n"


def framework_config(directory: Path, app: str, interface: str) -> Path:
    """A mount file for a real Flask app (flask_site:app) or FastAPI app
    (fastapi_site:app) written next to it, mounted at /site with `interface`."""
    (directory / "flask_site.py").write_text(FLASK_SITE)
    (directory / "fastapi_site.py").write_text(FASTAPI_SITE)
    config = directory / "site.toml"
    config.write_text(
        f'[server]\nbind = ["127.0.0.1:0"]\npythonpath = [{str(directory)!r}]\n\n'
        f'[[mount]]\nprefix = "/site"\napp = "{app}"\ninterface = "{interface}"\n'
    )
    return config


@pytest.mark.parametrize(
    ("app", "declared", "fix"),
    [("flask_site:app", "asgi", "wsgi"), ("fastapi_site:app", "wsgi", "asgi")],
)
@pytest.mark.parametrize(("command", "status"), [("check", 1), ("serve", 3)])
def test_an_interface_that_contradicts_the_app_is_refused_at_load(
    tmp_path: Path, app: str, declared: str, fix: str, command: str, status: int
) -> None:
    result = run(command, str(framework_config(tmp_path, app, declared)))
    assert result.returncode == status, result.stderr
    message = result.stderr.strip()
    assert message.startswith(f'gateway: {tmp_path / "site.toml"}: [mount #1, prefix "/site"]')
    assert f"looks like a{'n' if fix == 'asgi' else ''} {fix.upper()} app" in message
    assert f'set interface = "{fix}"' in message
    assert "Traceback" not in result.stderr
    assert "serving on" not in result.stderr


@pytest.mark.parametrize(
    ("app", "interface"), [("flask_site:app", "wsgi"), ("fastapi_site:app", "asgi")]
)
def test_an_interface_that_matches_the_app_passes_check(
    tmp_path: Path, app: str, interface: str
) -> None:
    result = run("check", str(framework_config(tmp_path, app, interface)))
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:2] == ["/site", interface] for line in result.stdout.splitlines())


def test_a_misspelt_app_attribute_names_the_mount_file_pythonpath_and_suggests(
    tmp_path: Path,
) -> None:
    result = run("check", str(framework_config(tmp_path, "flask_site:ap", "wsgi")))
    assert result.returncode == 1
    message = result.stderr
    assert f'{tmp_path / "site.toml"}: [mount #1, prefix "/site"] app:' in message
    assert str(tmp_path / "flask_site.py") in message  # the module that was found
    assert "did you mean 'app'?" in message
    assert f"pythonpath searched: {tmp_path}" in message


def test_a_missing_module_names_the_pythonpath_it_was_looked_for_on(tmp_path: Path) -> None:
    result = run("serve", str(framework_config(tmp_path, "flask_sight:app", "wsgi")))
    assert result.returncode == 3
    assert "module 'flask_sight' not found" in result.stderr
    assert f"pythonpath searched: {tmp_path}" in result.stderr


def test_a_bind_of_a_port_alone_says_the_host_is_missing(probe_config: Path) -> None:
    """issue 13, point 14: `--bind 9000` used to say "missing port"."""
    result = run("serve", str(probe_config), "--bind", "9000")
    assert result.returncode == 1
    assert "missing host" in result.stderr and "missing port" not in result.stderr
    assert "127.0.0.1:9000" in result.stderr
