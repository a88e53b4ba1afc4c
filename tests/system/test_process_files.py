"""The pid file, `chdir`, and `user`/`group`, through a real `gateway serve` subprocess.

The app (written for each test) answers with the identity and working directory of the
process that serves the request: "UID GID CWD PID".
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S
from support.processes import GATEWAY, GatewayProcess, child_pids

from gateway.config.loader import load_config
from gateway.errors import ConfigError
from gateway.process.privileges import resolve_identity

DEADLINE_S = 30.0

IDENTITY_APP = """
import os

async def app(scope, receive, send):
    answer = f"{os.getuid()} {os.getgid()} {os.getcwd()} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})
"""


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory every user may read (pytest's tmp_path is root's alone), holding the
    identity app; `user` tests import it as another user."""
    directory = Path(tempfile.mkdtemp(prefix="gateway-site-"))
    directory.chmod(0o755)
    (directory / "identity_app.py").write_text(IDENTITY_APP)
    (directory / "elsewhere").mkdir(mode=0o755)
    yield directory
    shutil.rmtree(directory)


def write_config(directory: Path, server: str = "") -> Path:
    config = directory / "gateway.toml"
    config.write_text(f"""
[server]
pythonpath = ["."]
graceful_timeout = 10
{server}

[[mount]]
prefix = "/"
app = "identity_app:app"
interface = "asgi"
lifespan = "off"
""")
    config.chmod(0o644)
    return config


def answer(gateway: GatewayProcess) -> list[str]:
    """UID, GID, CWD and PID of the process that served a request."""
    return httpx.get(gateway.url + "/", timeout=CLIENT_TIMEOUT_S).text.split()


def run_to_exit(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, "serve", str(config), "--bind", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("gateway: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- the pid file ------------------------------------------------------------------------


def test_the_pid_file_holds_the_supervisors_pid_until_a_clean_stop(site: Path) -> None:
    pid_file = site / "run" / "gateway.pid"
    pid_file.parent.mkdir()
    gateway = GatewayProcess(write_config(site, "workers = 2"), "--pid", str(pid_file))
    try:
        gateway.wait_for_line("2 workers ready")
        assert pid_file.read_text() == f"{gateway.proc.pid}\n"
        assert answer(gateway)[3] != str(gateway.proc.pid)  # a worker answered
        assert list(pid_file.parent.iterdir()) == [pid_file]  # no temporary left behind
    finally:
        assert gateway.stop() == 0
    assert not pid_file.exists()


def test_a_pid_file_in_the_mount_file_is_relative_to_it(site: Path) -> None:
    gateway = GatewayProcess(write_config(site, 'pid = "gateway.pid"'))
    try:
        gateway.wait_for_line("serving on")
        assert (site / "gateway.pid").read_text() == f"{gateway.proc.pid}\n"
    finally:
        assert gateway.stop() == 0
    assert not (site / "gateway.pid").exists()


def test_a_pid_file_of_a_running_server_is_refused(site: Path) -> None:
    """Two servers on one pid file would remove each other's; a running one keeps it."""
    pid_file = site / "gateway.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this test process: alive, not the server
    result = run_to_exit(write_config(site), "--pid", str(pid_file))
    assert result.returncode == 1
    expected = f"gateway: pid: {pid_file} names process {os.getpid()}, which is running"
    assert one_line(result) == expected
    assert pid_file.read_text() == f"{os.getpid()}\n"


def test_a_stale_pid_file_is_replaced(site: Path) -> None:
    """A server killed with SIGKILL leaves its pid file; its pid names no process now."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file = site / "gateway.pid"
    pid_file.write_text(f"{dead.pid}\n")
    gateway = GatewayProcess(write_config(site), "--pid", str(pid_file))
    try:
        gateway.wait_for_line("serving on")
        assert pid_file.read_text() == f"{gateway.proc.pid}\n"
    finally:
        assert gateway.stop() == 0


# -- chdir -------------------------------------------------------------------------------


def test_chdir_and_pid_on_the_command_line_are_relative_to_where_it_runs(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gateway serve gateway.toml --chdir elsewhere --pid gateway.pid`, typed in the
    site's directory: the apps run in elsewhere/, the pid file lands beside the mount
    file, and a HUP still finds the (relative) mount file after the chdir."""
    write_config(site, "workers = 2")
    monkeypatch.chdir(site)
    gateway = GatewayProcess(Path("gateway.toml"), "--chdir", "elsewhere", "--pid", "gateway.pid")
    try:
        gateway.wait_for_line("2 workers ready")
        assert answer(gateway)[2] == str(site / "elsewhere")
        assert (site / "gateway.pid").read_text() == f"{gateway.proc.pid}\n"
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_for_line("generation 2 ready")
        assert answer(gateway)[2] == str(site / "elsewhere")
    finally:
        assert gateway.stop() == 0
    assert not (site / "gateway.pid").exists()


def test_chdir_in_the_mount_file_is_relative_to_it(site: Path) -> None:
    gateway = GatewayProcess(write_config(site, 'chdir = "elsewhere"'))
    try:
        gateway.wait_for_line("serving on")
        assert answer(gateway)[2] == str(site / "elsewhere")
    finally:
        assert gateway.stop() == 0


def test_a_chdir_that_does_not_exist_stops_the_start(site: Path) -> None:
    result = run_to_exit(write_config(site), "--chdir", str(site / "missing"))
    assert result.returncode == 1
    assert "[server] chdir: cannot change to" in one_line(result)


# -- user and group ----------------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="dropping privileges needs a server started as root"
)


@needs_root
@pytest.mark.parametrize("how", ["flag", "env"])
def test_user_and_group_are_dropped_after_binding(site: Path, how: str) -> None:
    """As root, `--user nobody` (or GATEWAY_USER): the supervisor and every worker serve
    as nobody (and its primary group), and the pid file written before the drop is
    still removed."""
    nobody = pwd.getpwnam("nobody")
    run = site / "run"
    run.mkdir(mode=0o777)  # nobody may remove the pid file there
    run.chmod(0o777)
    pid_file = run / "gateway.pid"
    config = write_config(site, "workers = 2")
    if how == "flag":
        gateway = GatewayProcess(config, "--user", "nobody", "--pid", str(pid_file))
    else:
        env = {"GATEWAY_USER": "nobody", "GATEWAY_PID": str(pid_file)}
        gateway = GatewayProcess(config, env=env)
    try:
        gateway.wait_for_line("2 workers ready")
        uid, gid, _, worker = answer(gateway)
        assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
        assert int(worker) in child_pids(gateway.proc.pid)
        for pid in [gateway.proc.pid, *child_pids(gateway.proc.pid)]:
            assert real_and_effective_uid(pid) == (nobody.pw_uid, nobody.pw_uid)
            assert 0 not in supplementary_groups(pid)  # root's group does not stay
    finally:
        assert gateway.stop() == 0
    assert not pid_file.exists()


def real_and_effective_uid(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uids = next(line for line in status if line.startswith("Uid:")).split()
    return int(uids[1]), int(uids[2])


def supplementary_groups(pid: int) -> set[int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {int(g) for g in next(line for line in status if line.startswith("Groups:")).split()[1:]}


@needs_root
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_group_alone_changes_the_group(site: Path, how: str) -> None:
    if how == "flag":
        gateway = GatewayProcess(write_config(site), "--group", "nogroup")
    else:
        gateway = GatewayProcess(write_config(site), env={"GATEWAY_GROUP": "nogroup"})
    try:
        gateway.wait_for_line("serving on")
        uid, gid, _, _ = answer(gateway)
        assert (int(uid), int(gid)) == (0, 65534)
    finally:
        assert gateway.stop() == 0


def test_an_unknown_user_stops_the_start_before_binding(site: Path) -> None:
    result = run_to_exit(write_config(site), "--user", "no-such-user-here")
    assert result.returncode == 1
    assert one_line(result).endswith("[server] user: no user 'no-such-user-here' on this system")
    assert "serving on" not in result.stderr


def test_another_user_without_root_is_refused(site: Path) -> None:
    """Not root: becoming anybody else is refused (exit status 1), not ignored."""
    if os.geteuid() == 0:
        pytest.skip("runs the server as a user other than root; this test runs as root")
    result = run_to_exit(write_config(site), "--user", "root")
    assert result.returncode == 1, result.stderr
    assert "[server] user: changing to another user needs root" in one_line(result)


@needs_root
def test_another_user_without_root_is_refused_after_dropping_root(site: Path) -> None:
    """The same refusal, from a process that was root and no longer is: a forked child
    becomes nobody (no python can be started as nobody here, /root is closed to it), and
    then asks to become daemon."""
    config = load_config(write_config(site), {"user": "daemon"})
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the refusal on the pipe, never return to pytest
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            resolve_identity(config)
            os.write(write_end, b"accepted")
        except ConfigError as exc:
            os.write(write_end, str(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    expected = "changing to another user needs root; this server runs as uid"
    assert f"[server] user: {expected} {nobody.pw_uid}" in message
