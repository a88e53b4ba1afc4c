"""The flags uvicorn and gunicorn users type, and their environment variables, through a
real `gateway serve` subprocess (issue 14, point 2).

Most tests hand the server a socket they bound (support.processes GatewayProcess, `--bind fd://N`).
`--host/--port` need a port number instead: the test binds 127.0.0.1:0, reads the port,
closes it and passes the number, retrying once if another process took it meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, START_DEADLINE_S, read_until_closed, wait_until
from support.paths import APPS_DIR
from support.processes import GATEWAY, GatewayProcess, child_pids
from support.tls_certs import make_certs

from gateway.config.options import cli_options

# Absolute, so the debug log shows it as typed; removed by the server at its clean exit.
PID_FILE = str(Path(tempfile.gettempdir()) / f"gateway-flags-test-{os.getpid()}.pid")

# Every option with a value that is not its default, so that the debug log shows it
# was applied; (text on the command line / in the environment, as the log shows it).
VALUES: dict[str, tuple[str, str]] = {
    "--workers": ("1", "1"),
    "--log-level": ("debug", "'debug'"),
    "--no-access-log": ("", "False"),
    "--keep-alive-timeout": ("7", "7.0"),
    "--limit-concurrency": ("50", "50"),
    "--backlog": ("64", "64"),
    "--graceful-timeout": ("9", "9.0"),
    "--pythonpath": (str(APPS_DIR), repr([str(APPS_DIR)])),
    "--http": ("h11", "'h11'"),
    "--worker-timeout": ("40", "40.0"),
    "--max-requests": ("1000", "1000"),
    "--max-requests-jitter": ("10", "10"),
    "--proxy-headers": ("", "True"),
    "--forwarded-allow-ips": ("10.0.0.1,10.0.0.2", "['10.0.0.1', '10.0.0.2']"),
    "--root-path": ("/app", "'/app'"),
    "--interface": ("asgi", "'asgi'"),
    "--access-log-format": ("%(h)s %(s)s", "'%(h)s %(s)s'"),
    "--log-format": ("json", "'json'"),
    "--no-server-header": ("", "False"),
    "--no-http2": ("", "False"),
    "--hooks": ("quiet_hooks", "'quiet_hooks'"),
    "--pid": (PID_FILE, repr(PID_FILE)),
    "--chdir": (str(APPS_DIR), repr(str(APPS_DIR))),
}
# Given another way in these tests, or by their own tests below: bind and its halves
# (--host/--port), TLS (needs certificates), --reload (a second process tree),
# --factory (tests/system/test_one_app.py), --log-config (needs a file of its own:
# tests/system/test_logging.py), --user/--group (need root and a user to become:
# tests/system/test_process_files.py), --admin-bind/--admin-token (an admin listener:
# tests/system/test_admin_serve.py).
ELSEWHERE = {
    "--admin-bind",
    "--admin-token",
    "--log-config",
    "--user",
    "--group",
    "--bind",
    "--host",
    "--port",
    "--ssl-certfile",
    "--ssl-keyfile",
    "--reload",
    "--factory",
}


def test_every_flag_is_in_this_test() -> None:
    assert {option.flag for option in cli_options()} == set(VALUES) | ELSEWHERE


def one_app(*args: str, env: dict[str, str] | None = None) -> GatewayProcess:
    return GatewayProcess("probe_asgi:app", *args, env=env, cwd=APPS_DIR)


def assert_applied(process: GatewayProcess, how: str) -> None:
    """Each option of VALUES shows in the debug log as the server holds it."""
    process.wait_for_line("serving on")
    log = "".join(process.all_lines())
    for option in cli_options():
        if option.flag in VALUES:
            source = option.flag if how == "flag" else option.env
            line = f"{option.setting} = {VALUES[option.flag][1]} (from {source})"
            assert line in log, line


def test_every_flag_reaches_the_server() -> None:
    args: list[str] = []
    for flag, (text, _) in VALUES.items():
        args += [flag, text] if text else [flag]
    process = one_app(*args)
    try:
        assert_applied(process, "flag")
        assert httpx.get(process.url + "/echo", timeout=CLIENT_TIMEOUT_S).status_code == 200
    finally:
        assert process.stop() == 0


def test_every_environment_variable_reaches_the_server() -> None:
    options = {option.flag: option for option in cli_options()}
    env = {options[flag].env: text or "1" for flag, (text, _) in VALUES.items()}
    process = one_app(env=env)
    try:
        assert_applied(process, "env")
    finally:
        assert process.stop() == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortServer:
    """`gateway serve` given a port number, not a socket (for --host/--port)."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [*GATEWAY, "serve", "probe_asgi:app", *args],
            cwd=APPS_DIR,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        self.log.extend(self.proc.stderr)

    def started(self) -> bool:
        """Serving, or exited (False then: the port was taken, or a real failure)."""
        wait_until(lambda: self.proc.poll() is not None or any("serving on" in x for x in self.log))
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(START_DEADLINE_S)
        self._reader.join(START_DEADLINE_S)
        return status


@pytest.fixture
def on_port() -> Iterator[Callable[..., PortServer]]:
    servers: list[PortServer] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> PortServer:
        for _ in range(2):  # the port may be taken between free_port() and the bind
            port = free_port()
            given = [arg.replace("{port}", str(port)) for arg in args]
            environ = {k: v.replace("{port}", str(port)) for k, v in (env or {}).items()}
            server = PortServer(given, environ, port)
            servers.append(server)
            if server.started():
                return server
        raise AssertionError("".join(server.log))

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "127.0.0.1", "--port", "{port}"], {}),
        (["--port", "{port}"], {}),  # the host defaults to 127.0.0.1, as uvicorn's
        (["-b", "127.0.0.1:{port}"], {}),
        ([], {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": "{port}"}),
        ([], {"GATEWAY_BIND": "127.0.0.1:{port}"}),
        (["--port", "{port}"], {"GATEWAY_BIND": "127.0.0.1:1"}),  # a flag beats the env
    ],
)
def test_host_port_and_bind(
    on_port: Callable[..., PortServer], args: list[str], env: dict[str, str]
) -> None:
    server = on_port(args, env)
    response = httpx.get(f"http://127.0.0.1:{server.port}/echo", timeout=CLIENT_TIMEOUT_S)
    assert response.status_code == 200


@pytest.mark.parametrize("extra", [["--port", "9000"], ["--host", "0.0.0.0"]])
def test_host_or_port_with_bind_is_a_usage_error(extra: list[str]) -> None:
    process = one_app(*extra)  # GatewayProcess passes --bind fd://N
    try:
        assert process.proc.wait(START_DEADLINE_S) == 1
    finally:
        process.stop()
    assert "--host/--port and --bind both name the address to listen on" in "".join(
        process.all_lines()
    )


@pytest.mark.parametrize("how", [["-w", "2"], ["--workers", "2"], []])
def test_workers(how: list[str]) -> None:
    env = {} if how else {"GATEWAY_WORKERS": "2"}
    process = one_app(*how, env=env)
    try:
        process.wait_for_line("serving on")
        wait_until(lambda: len(child_pids(process.proc.pid)) == 2)
    finally:
        assert process.stop() == 0


@pytest.fixture
def two_mounts(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
health_path = "/_gateway"
keep_alive_timeout = 300
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


@pytest.mark.parametrize("how", ["flag", "env"])
def test_root_path_is_put_back_in_front_for_asgi_and_wsgi(two_mounts: Path, how: str) -> None:
    """A proxy strips /app: the client's /app/asgi/scope arrives as /asgi/scope."""
    args, env = (
        (["--root-path", "/app"], {}) if how == "flag" else ([], {"GATEWAY_ROOT_PATH": "/app"})
    )
    process = GatewayProcess(two_mounts, *args, env=env)
    try:
        process.wait_for_line("serving on")
        scope = httpx.get(process.url + "/asgi/scope", timeout=CLIENT_TIMEOUT_S).json()
        assert (scope["root_path"], scope["path"]) == ("/app/asgi", "/app/asgi/scope")
        assert scope["raw_path"] == "/app/asgi/scope"
        environ = httpx.get(process.url + "/environ", timeout=CLIENT_TIMEOUT_S).json()
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/environ")
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize(
    ("args", "env", "client"),
    [
        ([], {}, "127.0.0.1"),
        (["--proxy-headers"], {}, "203.0.113.7"),
        ([], {"GATEWAY_PROXY_HEADERS": "true"}, "203.0.113.7"),
        (["--proxy-headers", "--forwarded-allow-ips", "10.0.0.1"], {}, "127.0.0.1"),
        (["--proxy-headers"], {"GATEWAY_FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.2"}, "127.0.0.1"),
        (["--proxy-headers", "--forwarded-allow-ips", "10.0.0.1,127.0.0.1"], {}, "203.0.113.7"),
    ],
)
def test_proxy_headers_and_forwarded_allow_ips(
    two_mounts: Path, args: list[str], env: dict[str, str], client: str
) -> None:
    process = GatewayProcess(two_mounts, *args, env=env)
    try:
        process.wait_for_line("serving on")
        headers = {"x-forwarded-for": "203.0.113.7"}
        environ = httpx.get(process.url + "/environ", headers=headers, timeout=CLIENT_TIMEOUT_S)
        assert environ.json()["REMOTE_ADDR"] == client
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize("how", ["flag", "env"])
def test_keep_alive_timeout_overrides_the_file(two_mounts: Path, how: str) -> None:
    """The file says 300 s; the flag's 0.5 s closes an idle connection well within the
    deadline, which the file's value never would."""
    args, env = (
        (["--keep-alive", "0.5"], {})
        if how == "flag"
        else ([], {"GATEWAY_KEEP_ALIVE_TIMEOUT": "0.5"})
    )
    process = GatewayProcess(two_mounts, *args, env=env)
    try:
        process.wait_for_line("serving on")
        port = int(process.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S) as sock:
            sock.sendall(b"GET /asgi/echo HTTP/1.1\r\nhost: x\r\n\r\n")
            data, closed = read_until_closed(sock, deadline_s=START_DEADLINE_S)
        assert data.startswith(b"HTTP/1.1 200") and closed
    finally:
        assert process.stop() == 0


def test_ssl_certfile_and_keyfile(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    process = one_app("--ssl-certfile", str(certs.cert), "--keyfile", str(certs.key))
    try:
        process.wait_for_line("serving on https://")
        url = process.url.replace("http://", "https://") + "/scope"
        scope = httpx.get(url, verify=certs.client_context(), timeout=CLIENT_TIMEOUT_S).json()
        assert scope["scheme"] == "https"
    finally:
        assert process.stop() == 0


def test_ssl_files_from_the_environment(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    env = {"GATEWAY_SSL_CERTFILE": str(certs.cert), "GATEWAY_SSL_KEYFILE": str(certs.key)}
    process = one_app(env=env)
    try:
        process.wait_for_line("serving on https://")
    finally:
        assert process.stop() == 0


def test_env_file_below_the_environment_below_the_flags(two_mounts: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text(
        "# settings for this host\n"
        "export GATEWAY_ROOT_PATH='/from-file'\n"
        "GATEWAY_PROXY_HEADERS=1\n"
        "GATEWAY_LOG_LEVEL=debug\n"
        "APP_SETTING=kept for the apps\n"
    )
    env = {"GATEWAY_LOG_LEVEL": "info"}
    process = GatewayProcess(
        two_mounts, "--env-file", str(env_file), "--log-level", "debug", env=env
    )
    try:
        process.wait_for_line("serving on")
        log = "".join(process.all_lines())
        assert "root_path = '/from-file' (from GATEWAY_ROOT_PATH)" in log
        assert "log_level = 'debug' (from --log-level)" in log  # the flag beats both
        headers = {"x-forwarded-for": "203.0.113.7"}
        environ = httpx.get(process.url + "/environ", headers=headers, timeout=CLIENT_TIMEOUT_S)
        assert environ.json()["SCRIPT_NAME"] == "/from-file"
        assert environ.json()["REMOTE_ADDR"] == "203.0.113.7"
    finally:
        assert process.stop() == 0


def test_the_environment_beats_the_env_file(two_mounts: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text("GATEWAY_ROOT_PATH=/from-file\n")
    env = {"GATEWAY_ROOT_PATH": "/from-env"}
    process = GatewayProcess(two_mounts, "--env-file", str(env_file), env=env)
    try:
        process.wait_for_line("serving on")
        environ = httpx.get(process.url + "/environ", timeout=CLIENT_TIMEOUT_S).json()
        assert environ["SCRIPT_NAME"] == "/from-env"
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "GATEWAY_WORKER=2\n",
            "GATEWAY_WORKER: line 1: no such setting; did you mean GATEWAY_WORKERS?",
        ),
        ("just words\n", "line 1: expected KEY=VALUE"),
        ("GATEWAY_WORKERS=0\n", "[server] workers: must be >= 1, got 0"),
        ("GATEWAY_WORKERS=two\n", "GATEWAY_WORKERS: [environment]: expected an integer, got 'two'"),
    ],
)
def test_a_bad_env_file_exits_1_with_one_line(
    two_mounts: Path, tmp_path: Path, text: str, message: str
) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text(text)
    result = subprocess.run(
        [*GATEWAY, "serve", str(two_mounts), "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_health_and_metrics_paths_are_below_the_root_path(two_mounts: Path) -> None:
    """Behind a proxy that strips /app, the probe paths are still /_gateway/...: they
    are matched below the root path, as the mounts are."""
    text = two_mounts.read_text()
    two_mounts.write_text(text.replace("[server]", '[server]\nmetrics_path = "/_m"', 1))
    process = GatewayProcess(two_mounts, "--root-path", "/app")
    try:
        process.wait_for_line("serving on")
        live = httpx.get(process.url + "/_gateway/live", timeout=CLIENT_TIMEOUT_S)
        assert live.status_code == 200
        metrics = httpx.get(process.url + "/_m", timeout=CLIENT_TIMEOUT_S)
        assert metrics.status_code == 200 and "gateway_" in metrics.text
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize("command", ["serve", "check"])
def test_help_lists_every_flag_with_its_environment_variable(command: str) -> None:
    """--help renders every declared help text (argparse %-formats them: a setting whose
    help quotes %(h)s must not break it)."""
    result = subprocess.run(
        [*GATEWAY, command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for option in cli_options():
        assert option.flag in result.stdout and option.env in result.stdout
    assert "%(h)s" in result.stdout
