"""Every `bind` form, with `gateway serve` as a subprocess: unix sockets (mode, a stale
file, what is refused), inherited descriptors, IPv6, systemd socket activation; and the
stop sequence a load balancer sees with `shutdown_delay`.

Readiness is the server's own "serving on ADDRESS" log line; a server that binds port 0
itself names the port it got in that line. Refusals are awaited as "the process exited"
or "the wrong thing happened", whichever comes first, so a wrong behaviour fails fast.
"""

from __future__ import annotations

import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import wait_until
from support.paths import APPS_DIR
from support.processes import GATEWAY, GatewayProcess

DEADLINE_S = 30.0


def mount_file(directory: Path, server: str = "") -> Path:
    """The probe ASGI app at "/", with extra [server] lines."""
    config = directory / "gateway.toml"
    config.write_text(
        f"[server]\npythonpath = [{str(APPS_DIR)!r}]\n{server}\n"
        '[[mount]]\nprefix = "/"\napp = "probe_asgi:app"\ninterface = "asgi"\n'
    )
    return config


class Served:
    """A server process started from any command line; its stderr goes to a file."""

    def __init__(self, command: list[str], directory: Path, pass_fds: tuple[int, ...] = ()):
        self.log = directory / "stderr.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                command,
                pass_fds=pass_fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def stderr(self) -> str:
        return self.log.read_text()

    def wait_for_log(self, pattern: str) -> re.Match[str]:
        """The first match of `pattern` in stderr; fails at once if the process exits."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            if match := re.search(pattern, self.stderr()):
                found.append(match)
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"exited before {pattern!r} was logged: {self.stderr()}")
            return False

        wait_until(seen, DEADLINE_S)
        return found[0]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(DEADLINE_S)
            raise


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket path must fit in 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="gw-", dir="/tmp") as name:
        yield Path(name)


def serve(config: Path, directory: Path, *args: str) -> Served:
    return Served([*GATEWAY, "serve", str(config), *args], directory)


def unix_client(path: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://gw")


def answers_on_unix_socket(path: Path) -> bool:
    with unix_client(path) as client:
        return client.post("/echo", content=b"over unix").text == "over unix"


def test_unix_socket_answers_with_the_configured_mode(short_dir: Path) -> None:
    path = short_dir / "gw.sock"
    config = mount_file(short_dir, f'bind = ["unix:{path}"]\nunix_socket_mode = 0o660')
    server = serve(config, short_dir)
    try:
        server.wait_for_log(f"serving on unix:{re.escape(str(path))}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert answers_on_unix_socket(path)
    finally:
        assert server.stop() == 0
    assert not path.exists()  # a clean stop removes the socket file it made


def test_a_stale_unix_socket_file_is_replaced(short_dir: Path) -> None:
    path = short_dir / "gw.sock"
    with socket.socket(socket.AF_UNIX) as dead:  # a server that died: the file remains
        dead.bind(str(path))
    assert stat.S_ISSOCK(path.stat().st_mode)
    server = serve(mount_file(short_dir), short_dir, "--bind", f"unix:{path}")
    try:
        server.wait_for_log("serving on unix:")
        assert answers_on_unix_socket(path)
    finally:
        assert server.stop() == 0


def wait_for_exit_or(server: Served, went_wrong: Callable[[], bool]) -> int:
    """The exit status; fails at once if `went_wrong()` turns true first."""
    wait_until(lambda: server.proc.poll() is not None or bool(went_wrong()), DEADLINE_S)
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(DEADLINE_S)
        raise AssertionError(f"the server went on instead of refusing: {server.stderr()}")
    return server.proc.returncode


def test_a_regular_file_at_the_unix_path_is_refused(short_dir: Path) -> None:
    path = short_dir / "precious.txt"
    path.write_text("not a socket")
    server = serve(mount_file(short_dir), short_dir, "--bind", f"unix:{path}")
    status = wait_for_exit_or(server, lambda: not path.is_file())
    assert status == 1
    message = server.stderr()
    assert f"gateway: cannot bind unix:{path}: {path} exists and is not a socket" in message
    assert "Traceback" not in message
    assert path.read_text() == "not a socket"


def test_a_unix_socket_another_server_listens_on_is_not_stolen(short_dir: Path) -> None:
    path = short_dir / "gw.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        inode = path.stat().st_ino
        server = serve(mount_file(short_dir), short_dir, "--bind", f"unix:{path}")
        status = wait_for_exit_or(server, lambda: path.stat().st_ino != inode)
    assert status == 1
    assert f"cannot bind unix:{path}: another server is listening on" in server.stderr()


def test_an_fd_bind_answers(tmp_path: Path) -> None:
    gateway = GatewayProcess(mount_file(tmp_path))  # binds 127.0.0.1:0, passes fd://N
    try:
        port = gateway.sock.getsockname()[1]
        gateway.wait_for_line(f"serving on http://127.0.0.1:{port}")
        assert httpx.post(gateway.url + "/echo", content=b"over fd").text == "over fd"
    finally:
        assert gateway.stop() == 0


def test_an_fd_that_is_not_listening_is_refused(tmp_path: Path) -> None:
    with socket.socket() as idle:  # created, never bound nor listening
        fd = idle.fileno()
        result = subprocess.run(
            [*GATEWAY, "serve", str(mount_file(tmp_path)), "--bind", f"fd://{fd}"],
            pass_fds=[fd],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    assert result.returncode == 1
    assert f"gateway: cannot bind fd://{fd}: not a listening socket" in result.stderr


def test_tcp_bind_on_port_0_names_its_port(tmp_path: Path) -> None:
    server = serve(mount_file(tmp_path, 'bind = ["127.0.0.1:0"]'), tmp_path)
    try:
        port = server.wait_for_log(r"serving on http://127\.0\.0\.1:(\d+)").group(1)
        assert httpx.post(f"http://127.0.0.1:{port}/echo", content=b"v4").text == "v4"
    finally:
        assert server.stop() == 0


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_bind_answers(tmp_path: Path) -> None:
    server = serve(mount_file(tmp_path, 'bind = ["[::1]:0"]'), tmp_path)
    try:
        port = server.wait_for_log(r"serving on http://\[::1\]:(\d+)").group(1)
        assert httpx.post(f"http://[::1]:{port}/echo", content=b"v6").text == "v6"
    finally:
        assert server.stop() == 0


# What systemd does before it starts a socket-activated service (sd_listen_fds(3)): the
# listening socket at fd 3, LISTEN_FDS=1, LISTEN_PID = the pid that will run the server
# (exec keeps the pid, so the wrapper's own).
SYSTEMD_WRAPPER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "gateway", "serve", *sys.argv[2:]])
"""


def test_systemd_socket_activation_serves_the_passed_socket(short_dir: Path) -> None:
    unused = short_dir / "unused.sock"  # the file's bind, which activation replaces
    config = mount_file(short_dir, f'bind = ["unix:{unused}"]')
    with socket.socket() as activated:
        activated.bind(("127.0.0.1", 0))
        activated.listen()
        port = activated.getsockname()[1]
        fd = activated.fileno()
        command = [sys.executable, "-c", SYSTEMD_WRAPPER, str(fd), str(config)]
        server = Served(command, short_dir, pass_fds=(fd,))
    try:
        server.wait_for_log(f"serving on http://127.0.0.1:{port}")
        assert httpx.post(f"http://127.0.0.1:{port}/echo", content=b"sd").text == "sd"
        assert not unused.exists()
    finally:
        assert server.stop() == 0


def test_on_term_readiness_turns_503_first_then_the_drain(tmp_path: Path) -> None:
    """On TERM, readiness turns to 503 first, so a load balancer stops sending traffic
    before the drain; requests are still served meanwhile, then the process exits 0."""
    config = mount_file(tmp_path, 'health_path = "/_gateway"\nshutdown_delay = 3')
    gateway = GatewayProcess(config)
    try:
        gateway.wait_for_line("serving on")
        assert httpx.get(gateway.url + "/_gateway/ready").status_code == 200
        termed_at = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        gateway.wait_for_line("not ready; serving 3.0 s more before the drain")
        assert httpx.get(gateway.url + "/_gateway/ready").status_code == 503
        assert httpx.post(gateway.url + "/echo", content=b"still served").status_code == 200
        assert gateway.proc.wait(DEADLINE_S) == 0
        assert time.monotonic() - termed_at >= 3.0  # the delay was kept, not skipped
    finally:
        gateway.stop()


def test_a_fast_stop_cuts_the_shutdown_delay_short(tmp_path: Path) -> None:
    config = mount_file(tmp_path, 'health_path = "/_gateway"\nshutdown_delay = 600')
    gateway = GatewayProcess(config)
    try:
        gateway.wait_for_line("serving on")
        gateway.proc.send_signal(signal.SIGTERM)
        gateway.wait_for_line("not ready; serving")
        gateway.proc.send_signal(signal.SIGTERM)  # a second TERM: a fast stop
        assert gateway.proc.wait(DEADLINE_S) == 0
    finally:
        gateway.stop()
