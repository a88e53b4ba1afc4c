"""A static mount from the command line: `gateway check` lists it, a missing directory
stops `gateway serve` with exit status 3 (as an app that fails to import does), and a
present one is served by `gateway serve` itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from support.paths import APPS_DIR
from support.processes import GATEWAY, GatewayProcess

CONFIG = f"""
[server]
bind = ["127.0.0.1:0"]
pythonpath = [{str(APPS_DIR)!r}]

[[mount]]
prefix = "/static"
static = "staticfiles"

[[mount]]
prefix = "/"
app = "probe_asgi:app"
interface = "asgi"
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    return path


def test_serve_exits_3_when_the_directory_is_missing(tmp_path: Path) -> None:
    result = run("serve", str(write_config(tmp_path)))
    assert result.returncode == 3, result.stderr
    assert f"{tmp_path / 'staticfiles'}" in result.stderr and "does not exist" in result.stderr


def test_check_lists_the_static_mount_or_says_why_not(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    missing = run("check", str(config))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    (tmp_path / "staticfiles").mkdir()
    result = run("check", str(config))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["/static", "static", str(tmp_path / "staticfiles"), "-"] in rows


def test_serve_serves_the_files(tmp_path: Path) -> None:
    (tmp_path / "staticfiles").mkdir()
    (tmp_path / "staticfiles" / "app.css").write_text("p {}\n")
    gateway = GatewayProcess(write_config(tmp_path))
    try:
        gateway.wait_for_line("serving on")
        response = httpx.get(gateway.url + "/static/app.css", timeout=30)
        assert (response.status_code, response.text) == (200, "p {}\n")
    finally:
        assert gateway.stop() == 0
