"""`gateway status` and `gateway check` writing into a pipe whose reader has gone, as
with `gateway status CONFIG --json | head` (issue 13, point 14): a quiet exit, status 0,
no traceback.

The test is the reader. It closes its end of the real pipe before the command writes:
`status` is held at its metrics request (a socket server here answers it only after
the close), and `check` cannot write before it has imported its app, whose import
waits on a FIFO the test opens after the close. So the command's first write meets a closed pipe
on every run, not by luck of scheduling.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from support.processes import GATEWAY

DEADLINE_S = 30.0
# Enough of an exposition for the report: one mount's requests.
EXPOSITION = (
    b"# HELP gateway_requests_total requests by status class\n"
    b"# TYPE gateway_requests_total counter\n"
    b'gateway_requests_total{mount="/",status_class="2xx"} 3.0\n'
)


def mount_file(directory: Path, app: str = "pipe_site:app") -> Path:
    config = directory / "gateway.toml"
    config.write_text(
        f"[server]\npythonpath = [{str(directory)!r}]\n\n"
        f'[[mount]]\nprefix = "/"\napp = "{app}"\ninterface = "wsgi"\n'
    )
    return config


def read_head(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    assert process.stderr is not None
    errors = process.stderr.read().decode()
    return process.wait(DEADLINE_S), errors


def test_status_json_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    (tmp_path / "pipe_site.py").write_text("def app(environ, start_response):\n    return []\n")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(DEADLINE_S)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/_gateway/metrics"
        process = subprocess.Popen(
            [*GATEWAY, "status", str(mount_file(tmp_path)), "--json", "--url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        connection, _ = listener.accept()
        with connection:
            assert read_head(connection).startswith(b"GET /_gateway/metrics ")
            assert process.stdout is not None
            process.stdout.close()  # the reader leaves, like `head` after its lines
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(EXPOSITION), EXPOSITION)
            )
    status, errors = finish(process)
    assert (status, errors) == (0, "")


def test_check_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    # Opening a FIFO to read blocks until a writer opens it: the import waits for the test.
    (tmp_path / "pipe_site.py").write_text(
        f"with open({str(go)!r}) as go:\n    go.read()\n\n"
        "def app(environ, start_response):\n    return []\n"
    )
    process = subprocess.Popen(
        [*GATEWAY, "check", str(mount_file(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader leaves before the routing table is printed
    with open(go, "w") as signal:  # lets the app's import finish
        signal.write("go")
    status, errors = finish(process)
    assert (status, errors) == (0, "")
