"""`gateway serve` with TLS as a subprocess: forked workers serve HTTPS, and a
certificate that does not load stops the server with exit status 1 before it serves,
at start and on a reload alike.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from support.paths import APPS_DIR
from support.processes import GatewayProcess
from support.tls_certs import Certs, make_certs

DEADLINE_S = 30.0


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path)


def write_config(tmp_path: Path, certfile: Path, workers: int) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[server]
pythonpath = [{str(APPS_DIR)!r}]
workers = {workers}
graceful_timeout = 5
certfile = {str(certfile)!r}

[[mount]]
prefix = "/"
app = "probe_asgi:app"
interface = "asgi"
""")
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_certificate_exits_1_before_serving(
    tmp_path: Path, certs: Certs, workers: int
) -> None:
    gateway = GatewayProcess(write_config(tmp_path, certs.key, workers))  # a key, no cert
    try:
        assert gateway.proc.wait(DEADLINE_S) == 1
    finally:
        gateway.stop()
    log = "".join(gateway.all_lines())
    assert "[server] certfile: holds no PEM certificate" in log
    assert "serving on" not in log and "Traceback" not in log


def test_forked_workers_serve_https_and_a_reload_keeps_a_good_certificate(
    tmp_path: Path, certs: Certs
) -> None:
    config = write_config(tmp_path, certs.cert_and_key, workers=2)
    gateway = GatewayProcess(config)
    try:
        gateway.wait_for_line("serving on https://127.0.0.1:")
        https_url = gateway.url.replace("http://", "https://")
        context = certs.client_context()
        assert httpx.get(https_url + "/scope", verify=context).json()["scheme"] == "https"
        # A reload whose certificate does not load leaves the running workers alone.
        write_config(tmp_path, tmp_path / "absent.pem", workers=2)
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_for_line("reload refused")
        assert httpx.get(https_url + "/scope", verify=context).status_code == 200
    finally:
        assert gateway.stop() == 0
