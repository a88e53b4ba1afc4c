"""The admin listener of `gateway serve` (issue 17, point 1), as a subprocess, with one
worker and with two: the parent binds `admin_bind` (a unix socket here, so the server
binds it itself), every worker serves it, the figures are summed across the workers,
and a clean stop removes its socket file. `gateway check` prints it.

The admin app itself, in one process: tests/integration/test_admin_served.py.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S
from support.processes import GatewayProcess, mount_file, run_gateway

from gateway.server.metrics import parse_exposition

TOKEN = "t0ken"
# Requests on new connections until every worker has answered some (the kernel spreads
# new connections over the workers; a few dozen almost always reach both).
MAX_REQUESTS = 400
SCRAPES = 6  # each on a new connection, so any worker may answer it


def admin_client(socket_path: Path) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=str(socket_path))
    return httpx.Client(
        transport=transport,
        base_url="http://admin",
        headers={"authorization": f"Bearer {TOKEN}", "connection": "close"},
        timeout=CLIENT_TIMEOUT_S,
    )


def serve_from_every_worker(gateway: GatewayProcess, workers: int) -> int:
    """Requests on new connections until `workers` workers answered; how many were sent."""
    answered: Counter[int] = Counter()
    while len(answered) < workers and sum(answered.values()) < MAX_REQUESTS:
        response = httpx.get(gateway.url + "/pid", headers={"connection": "close"})
        assert response.status_code == 200
        answered[int(response.text)] += 1
    assert len(answered) == workers, f"not every worker answered {MAX_REQUESTS} requests"
    return sum(answered.values())


@pytest.mark.parametrize("workers", [1, 2])
def test_every_worker_serves_the_admin_listener_the_parent_bound(
    tmp_path: Path, workers: int
) -> None:
    socket_path = tmp_path / "admin.sock"
    server = f'admin_bind = "unix:{socket_path}"\nadmin_token = "{TOKEN}"'
    config = mount_file(tmp_path / "gateway.toml", server)
    gateway = GatewayProcess(config, "--workers", str(workers), env={"TMPDIR": str(tmp_path)})
    try:
        # A worker listens on the admin socket after the apps', before it is ready.
        gateway.wait_for_line(f"admin listener on unix:{socket_path}")
        if workers > 1:
            gateway.wait_for_line(f"{workers} workers ready")
        sent = serve_from_every_worker(gateway, workers)
        with admin_client(socket_path) as admin:
            for _ in range(SCRAPES):
                samples = parse_exposition(admin.get("/metrics").text)
                counts = {
                    s.labels["status_class"]: s.value
                    for s in samples
                    if s.name == "gateway_requests_total" and s.labels["mount"] == "/"
                }
                assert counts["2xx"] == sent  # both workers' requests, whoever answered
                report = json.loads(admin.get("/status.json").text)
                assert report["mounts"][0] == {**report["mounts"][0], "mount": "/"}
                page = admin.get("/")
                assert page.status_code == 200 and "<h1>Migration</h1>" in page.text
            assert admin.get("/", headers={"authorization": ""}).status_code == 401
        # The apps' port has none of it (no metrics_path).
        assert httpx.get(gateway.url + "/metrics").status_code == 404
    finally:
        assert gateway.stop() == 0
    assert not socket_path.exists()  # a clean stop leaves nothing behind


def test_the_flag_and_the_environment_variable(tmp_path: Path) -> None:
    socket_path = tmp_path / "admin.sock"
    config = mount_file(tmp_path / "gateway.toml")
    env = {"GATEWAY_ADMIN_TOKEN": TOKEN}
    gateway = GatewayProcess(config, "--admin-bind", f"unix:{socket_path}", env=env)
    try:
        gateway.wait_for_line(f"admin listener on unix:{socket_path}")
        with admin_client(socket_path) as admin:
            assert admin.get("/status.json").status_code == 200
            assert admin.get("/status.json", headers={"authorization": ""}).status_code == 401
    finally:
        assert gateway.stop() == 0


def test_check_prints_the_admin_listener(tmp_path: Path) -> None:
    config = mount_file(tmp_path / "gateway.toml", 'admin_bind = "127.0.0.1:9100"')
    result = run_gateway("check", str(config))
    assert result.returncode == 0, result.stderr
    assert "admin:    127.0.0.1:9100 (plain HTTP: /, /metrics, /status.json)" in result.stdout


def test_admin_bind_on_an_apps_address_exits_1(tmp_path: Path) -> None:
    config = mount_file(tmp_path / "gateway.toml", 'admin_bind = "127.0.0.1:8000"')
    result = run_gateway("check", str(config))
    assert result.returncode == 1
    assert "admin_bind: 127.0.0.1:8000 is in bind too" in result.stderr


def test_an_admin_bind_in_use_exits_1_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = mount_file(tmp_path / "gateway.toml", f'admin_bind = "{address}"')
        gateway = GatewayProcess(config)
        line = gateway.wait_for_line("cannot bind")
        assert gateway.proc.wait(CLIENT_TIMEOUT_S * 3) == 1  # it exits by itself
        gateway.stop()
    assert address in line
    assert not any("serving on" in seen for seen in gateway.all_lines())
