"""uvloop where it imports, asyncio's own loop where it does not (issue 14, point 6).

pyproject.toml installs uvloop only on CPython outside Windows; elsewhere the server must
still start, serve on asyncio's loop, and say so in one warning line, however many
workers it runs. "Cannot be imported" is made real here: a directory on PYTHONPATH holds
a `uvloop.py` that raises ImportError, as a missing or broken uvloop would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, START_DEADLINE_S
from support.processes import GATEWAY, GatewayProcess, mount_file

WARNING = "uvloop cannot be imported here"


@pytest.fixture
def without_uvloop(tmp_path: Path) -> dict[str, str]:
    """The environment of a server whose `import uvloop` fails."""
    shadow = tmp_path / "no_uvloop"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text('raise ImportError("no uvloop on this platform")\n')
    return {"PYTHONPATH": str(shadow)}


@pytest.fixture
def servers() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for process in started:
        process.stop()


def start(
    tmp_path: Path, workers: int, env: dict[str, str], servers: list[GatewayProcess]
) -> GatewayProcess:
    config = mount_file(tmp_path / "gateway.toml", f"workers = {workers}", app="loop_probe:app")
    process = GatewayProcess(config, env=env)
    servers.append(process)
    process.wait_for_line("serving on" if workers == 1 else f"{workers} workers ready")
    return process


def loop_class(process: GatewayProcess) -> str:
    response = httpx.get(process.url + "/", timeout=CLIENT_TIMEOUT_S)
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize("workers", [1, 2])
def test_without_uvloop_it_serves_on_asyncio_and_warns_once(
    tmp_path: Path, without_uvloop: dict[str, str], servers: list[GatewayProcess], workers: int
) -> None:
    process = start(tmp_path, workers, without_uvloop, servers)
    assert loop_class(process).startswith("asyncio.")
    assert process.stop() == 0
    warnings = [line for line in process.all_lines() if WARNING in line]
    assert len(warnings) == 1, process.all_lines()
    assert " WARNING " in warnings[0]
    assert "serving on" not in warnings[0]  # the readiness line, which users and tests await


def test_with_uvloop_it_serves_on_uvloop_without_a_warning(
    tmp_path: Path, servers: list[GatewayProcess]
) -> None:
    process = start(tmp_path, 1, {}, servers)
    assert loop_class(process) == "uvloop.Loop"
    assert process.stop() == 0
    assert not [line for line in process.all_lines() if WARNING in line]


@pytest.mark.parametrize("workers", [1, 2])
def test_without_uvloop_an_app_that_fails_to_load_is_still_one_line(
    tmp_path: Path, without_uvloop: dict[str, str], workers: int
) -> None:
    """The warning comes once the apps are loaded: an error that stops the start stays
    the one line the user has to read (gateway/cli.py, rule "user-facing messages are one
    line on stderr")."""
    server = f"workers = {workers}\npreload = true"
    config = mount_file(tmp_path / "gateway.toml", server, app="broken_import:app")
    result = subprocess.run(
        [*GATEWAY, "serve", str(config), "--bind", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
        env={**os.environ, **without_uvloop},
    )
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("gateway: ")
