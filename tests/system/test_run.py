"""`gateway.run(...)` blocks and serves like `gateway serve`, in a program of the user's
own, run here as a subprocess and stopped with SIGTERM (issue 14, point 4).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, START_DEADLINE_S, wait_until
from support.paths import APPS_DIR

PROGRAM = """
import sys
import gateway

def legacy(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [("wsgi " + environ["SCRIPT_NAME"] + " " + environ["PATH_INFO"]).encode()]

port = int(sys.argv[1])
raise SystemExit({call})
"""

CALLS = {
    "object": 'gateway.run(legacy, host="127.0.0.1", port=port, interface="wsgi")',
    "reference": 'gateway.run("probe_wsgi:app", port=port, pythonpath=[{apps!r}])',
    "mounts": (
        'gateway.run(mounts=[{{"prefix": "/old", "app": legacy, "interface": "wsgi"}}], '
        'bind=f"127.0.0.1:{{port}}", workers=2)'
    ),
    "file": "gateway.run({file!r}, port=port)",
}
# The path asked for, and the answer: the test's own app echoes its path; the probe
# app's /environ answers JSON.
EXPECTED = {
    "object": ("/old/x", "wsgi  /old/x"),
    "reference": ("/environ", None),
    "mounts": ("/old/x", "wsgi /old /x"),
    "file": ("/environ", None),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(program: Path) -> tuple[subprocess.Popen[str], list[str], int]:
    """The program on a free port; once more if the port was taken meanwhile."""
    for _ in range(2):
        port = free_port()
        proc, lines = launch(program, port)
        if proc.poll() is None:
            return proc, lines, port
    raise AssertionError("".join(lines))


def launch(program: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """Run the program; return once it serves or has exited."""
    proc = subprocess.Popen(
        [sys.executable, str(program), str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True).start()
    wait_until(lambda: proc.poll() is not None or any("serving on" in x for x in lines))
    return proc, lines


@pytest.mark.parametrize("form", list(CALLS))
def test_run_serves_until_sigterm(tmp_path: Path, form: str) -> None:
    mount_file = tmp_path / "gateway.toml"
    mount_file.write_text(
        f"[server]\npythonpath = [{str(APPS_DIR)!r}]\n\n"
        '[[mount]]\nprefix = "/"\napp = "probe_wsgi:app"\ninterface = "wsgi"\n'
    )
    program = tmp_path / "serve.py"
    call = CALLS[form].format(apps=str(APPS_DIR), file=str(mount_file))
    program.write_text(PROGRAM.format(call=call))
    proc, lines, port = start(program)
    try:
        path, text = EXPECTED[form]
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=CLIENT_TIMEOUT_S)
        assert response.status_code == 200
        if text is not None:
            assert response.text == text
        else:
            assert response.json()["PATH_INFO"] == "/environ"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(START_DEADLINE_S) == 0, "".join(lines)


def test_run_raises_the_cli_errors(tmp_path: Path) -> None:
    program = tmp_path / "bad.py"
    program.write_text("import gateway\ngateway.run('main:app', workers=0)\n")
    result = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert (
        "gateway.errors.ConfigError: main:app (command line): [server] workers: must be >= 1"
        in (result.stderr)
    )
