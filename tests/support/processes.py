"""`gateway serve` as a subprocess, for the system tests of the process model.

`GatewayProcess` runs the server on a socket bound here and passed with `--bind fd://N`
(never bind-then-close port picking); readiness is the server's own "serving on" line.

Rules:
1. Both of the child's pipes are always drained by threads of their own, so a chatty
   server never blocks on a full pipe and no line is lost.
2. Every wait has a deadline: a line that never comes fails with the log seen so far, and
   a server that ignores SIGTERM is killed at `stop`'s deadline.
3. Child processes are read from the kernel (/proc), never guessed from log lines.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.deadlines import START_DEADLINE_S
from support.paths import APPS_DIR

# -P: the installed package (compiled where the install compiled it, setup.py), not the
# .py files of a checkout that the current directory would put first on sys.path.
GATEWAY = [sys.executable, "-P", "-m", "gateway"]


def child_pids(pid: int) -> list[int]:
    """The live child processes of `pid`, from the kernel (those being reaped too), as
    forked by any of its threads."""
    pids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        # The thread (or the whole process) may end while we read.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def mount_file(
    path: Path, server: str = "", extra_mounts: str = "", app: str = "worker_probe:app"
) -> Path:
    """Write a mount file serving `app` (tests/apps) at "/", with `server` lines in
    [server] and `extra_mounts` after; for system tests of the process model."""
    path.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
graceful_timeout = 10
{server}

[[mount]]
prefix = "/"
app = "{app}"
interface = "asgi"
{extra_mounts}
""")
    return path


class GatewayProcess:
    """`gateway serve` on a socket bound here; its stderr and stdout read line by line."""

    def __init__(
        self,
        config: Path | str,
        *args: str,
        env: dict[str, str] | None = None,
        new_session: bool = False,
        cwd: Path | None = None,
    ) -> None:
        """`new_session`: the server leads a process group of its own, which a test can
        signal as a whole (os.killpg), as a terminal's Ctrl-C does. `config` may be an
        app reference ("main:app"), which `cwd` may hold."""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [*GATEWAY, "serve", str(config), "--bind", f"fd://{fd}", *args],
            pass_fds=[fd],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
            cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stdout: list[str] = []
        # Both pipes are always drained, so a chatty server never blocks on a full pipe.
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout.extend(self.proc.stdout)

    def wait_for_line(self, text: str, deadline_s: float = START_DEADLINE_S) -> str:
        """Wait for a stderr line containing `text`; fail with the log at the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; saw: {''.join(self.seen)}")

    def stop(self, deadline_s: float = START_DEADLINE_S) -> int:
        """SIGTERM (if still running), then the exit status; kill past the deadline."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(deadline_s)
            raise
        finally:
            for reader in self._readers:
                reader.join(deadline_s)
            self.sock.close()

    def all_lines(self) -> list[str]:
        """Everything seen on stderr so far (all of it, once the process has stopped)."""
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen


def run_gateway(*args: str) -> subprocess.CompletedProcess[str]:
    """`gateway ARGS` as a subprocess that ends by itself (check, status), its output kept."""
    return subprocess.run(
        [*GATEWAY, *args], capture_output=True, text=True, timeout=START_DEADLINE_S, check=False
    )


def gateway_status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gateway status CONFIG ARGS`."""
    return run_gateway("status", str(config), *args)
