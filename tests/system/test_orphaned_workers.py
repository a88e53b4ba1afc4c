"""Workers die with their supervisor (issue 13, point 7).

`gateway serve --workers 2` serves on a socket the test bound and passed, and then
closed its own copy of, so the test can tell when nothing holds the port any more. The supervisor
is killed with SIGKILL: it cannot stop its workers, and they must notice by themselves
(the closed pipe, or a new parent pid), stop gracefully (lifespan shutdown runs) and
free the port, so that a restart can bind it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import httpx
from support.deadlines import wait_until
from support.processes import GatewayProcess, child_pids, mount_file

# The workers notice within a beat (a second) and then drain: no connection is open, so
# the drain is short. Generous for a busy 2-core machine; the failure mode (before the
# fix) is workers that keep serving for good.
ORPHAN_EXIT_DEADLINE_S = 15.0
CLIENT_TIMEOUT_S = 10.0
# A request still running when the supervisor dies: its worker finishes it before it
# exits (graceful_timeout is 10 s in mount_file).
SLOW_URL = "http://127.0.0.1:%d/sleep?2"


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_is_free(port: int) -> bool:
    """Whether a new server could bind and listen on the port, as the gateway does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def test_workers_stop_gracefully_and_free_the_port_when_the_supervisor_is_killed(
    tmp_path: Path,
) -> None:
    probe_log = tmp_path / "probe.log"
    config = mount_file(tmp_path / "gateway.toml")
    env = {"WORKER_PROBE_LOG": str(probe_log)}
    gateway = GatewayProcess(config, "--workers", "2", env=env, new_session=True)
    # As the gateway's own binds do (gateway/process/sockets.py): the connections it closes first
    # linger in TIME_WAIT, which must not keep a restart from binding.
    gateway.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    gateway.sock.close()  # passed on already: from now on only the gateway holds the port
    port = int(gateway.url.rsplit(":", 1)[1])
    workers: list[int] = []
    slow: list[httpx.Response] = []  # the request in flight when the supervisor dies
    try:
        gateway.wait_for_line("2 workers ready")
        workers = child_pids(gateway.proc.pid)
        assert len(workers) == 2
        response = httpx.get(f"http://127.0.0.1:{port}/pid", timeout=CLIENT_TIMEOUT_S)
        assert int(response.text) in workers
        assert not port_is_free(port)
        in_flight = threading.Thread(
            target=lambda: slow.append(httpx.get(SLOW_URL % port, timeout=CLIENT_TIMEOUT_S))
        )
        in_flight.start()
        wait_until(lambda: probe_log.exists() and "sleep-start" in probe_log.read_text())

        gateway.proc.send_signal(signal.SIGKILL)
        gateway.proc.wait(CLIENT_TIMEOUT_S)
        wait_until(lambda: not any(alive(pid) for pid in workers), ORPHAN_EXIT_DEADLINE_S)
        wait_until(lambda: port_is_free(port), ORPHAN_EXIT_DEADLINE_S)
        in_flight.join(CLIENT_TIMEOUT_S)
    finally:
        for pid in workers:  # the failure mode: orphans that keep serving
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        gateway.stop()
    shutdowns = [line for line in probe_log.read_text().splitlines() if line.startswith("shutdown")]
    assert sorted(int(line.split()[1]) for line in shutdowns) == sorted(workers)
    assert [response.status_code for response in slow] == [200]  # a graceful stop
