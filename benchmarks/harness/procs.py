"""Server processes: start pinned, wait until ready, read their tree from /proc, stop.

Every server runs in its own session (process group), so stopping it reaches its workers
too, and a Ctrl-C in the terminal reaches the runner only, which then stops the servers.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.cases import APPS_DIR, HOST, POST_BODY, Case, Launch, Server

SERVER_CORE = "0"
READY_TIMEOUT_S = 30.0  # FastAPI + uvloop import in ~1 s; 30 s means "it will not start"
STOP_TIMEOUT_S = 15.0  # then SIGKILL; an idle server stops in well under a second
KILL_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5.0
MAX_TREE = 1000  # bound on the processes walked in a server's tree (it has a handful)


@dataclass
class Running:
    server: Server
    process: subprocess.Popen[bytes]
    port: int
    log: Path


def free_port() -> int:
    """A port free right now (bind, read, close): acceptable in a benchmark runner only."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)
    return sock


@contextlib.contextmanager
def started(server: Server, case: Case, logdir: Path) -> Iterator[Running]:
    """Start `server` for `case` pinned to SERVER_CORE; always stop it on the way out."""
    sock = listening_socket() if server.inherits_socket else None
    launch = Launch(sock.getsockname()[1], sock.fileno()) if sock else Launch(free_port())
    log = logdir / f"{case.name}-{server.name}.log"
    pythonpath = os.pathsep.join(filter(None, [str(APPS_DIR), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["taskset", "-c", SERVER_CORE, *server.argv(case, launch)],
                cwd=APPS_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                pass_fds=(launch.fd,) if launch.fd is not None else (),
                start_new_session=True,
            )  # fmt: skip
    finally:
        if sock:
            sock.close()  # the server holds its own copy
    try:
        yield Running(server, process, launch.port, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL it if it outlives STOP_TIMEOUT_S."""
    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, KILL_TIMEOUT_S)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # its own session: this group is the server's
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            print(f"  pid {process.pid} still running {timeout:.0f}s after {sig.name}")


def log_tail(path: Path, lines: int = 6) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_once(port: int, path: str, case: Case) -> str:
    """One request like wrk's; "" if the answer is right, else what was wrong."""
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        method, body = ("POST", POST_BODY) if case.post else ("GET", None)
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        return f"status {response.status} for {path}"
    if not case.expect(data):
        return f"unexpected body for {path}: {data[:60]!r}"
    return ""


def check_once_h2c(port: int, path: str, case: Case) -> str:
    """One HTTP/2 request with prior knowledge, as h2load sends them, by curl (the
    standard library speaks no HTTP/2); "" if the answer is right, else what was wrong."""
    argv = [
        "curl", "--silent", "--show-error", "--http2-prior-knowledge",
        "--max-time", str(REQUEST_TIMEOUT_S), "--output", "-",
        "--write-out", "\n%{http_version} %{http_code}", f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=REQUEST_TIMEOUT_S + 5, check=False)
    if done.returncode != 0:
        return f"curl exited {done.returncode}: {done.stderr.decode(errors='replace')[-200:]}"
    body, _, status_line = done.stdout.rpartition(b"\n")
    if status_line != b"2 200":
        return f"HTTP version and status {status_line.decode(errors='replace')!r} for {path}"
    if not case.expect(body):
        return f"unexpected body for {path}: {body[:60]!r}"
    return ""


def wait_ready(running: Running, path: str, case: Case) -> None:
    """Poll connect + one request until the answer is right, within READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    problem = "no answer"
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            code = running.process.returncode
            raise RuntimeError(f"exited with {code}: {log_tail(running.log)}")
        try:
            check = check_once_h2c if case.http2 else check_once
            problem = check(running.port, path, case)
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if not problem:
            return
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f}s: {problem}")


def _parent(stat_text: str) -> int:
    return int(stat_text[stat_text.rfind(")") + 2 :].split()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from the ppid in every /proc/N/stat."""
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            kids.setdefault(_parent(stat.read_text()), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo and len(tree) < MAX_TREE:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(kids.get(pid, []))
    return tree


def _status_field(pid: int | str, name: str, task: str = "") -> str:
    path = Path(f"/proc/{pid}/task/{task}/status" if task else f"/proc/{pid}/status")
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def rss_mib(pids: list[int]) -> float:
    """VmRSS of the processes added up, in MiB."""
    kib = 0
    for pid in pids:
        value = _status_field(pid, "VmRSS")
        kib += int(value.split()[0]) if value else 0
    return kib / 1024


def unpinned(pids: list[int]) -> list[str]:
    """Threads of these processes allowed on other cores than SERVER_CORE."""
    wrong = []
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            allowed = _status_field(pid, "Cpus_allowed_list", task.name)
            if allowed and allowed != SERVER_CORE:
                wrong.append(f"{pid}/{task.name} on {allowed}")
    return wrong
