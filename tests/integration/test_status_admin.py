"""`gateway status` reading an admin listener's /status.json (gateway/status.py, rule
"read only, one GET"): the report as the server built it, with its mismatches and noise,
behind a bearer token. The listener here is a stand-in on a real socket (http.server),
answering what WorkerMetrics.report_json builds; the real one is the admin listener's
own tests'."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway import cli
from gateway.config.loader import parse_config
from gateway.migration.report import Sample, build_report
from gateway.status import StatusUnavailable, admin_url, read_report

TOKEN = "s3cret"
ROUTE = {"mount": "/api", "route": "/users/{id}", "side": "legacy", "status_class": "2xx"}


def report_doc() -> dict[str, Any]:
    samples = [Sample("gateway_route_requests_total", ROUTE, 7)]
    by_route = {"mount": "/api", "route": "/users/{id}"}
    samples.append(Sample("gateway_route_shadow_compared_total", by_route, 150))
    samples.append(Sample("gateway_route_shadow_mismatches_total", by_route, 3))
    ledger = {
        "history": [[1_800_000_000, 2, 5]],
        "mismatches": {
            "/api": {"/users/{id}": [{"kind": "body $.price", "count": 3, "sample": {}}]}
        },
        "noise": {
            "/api": {"/users/{id}": {"json_paths": ["$.ts"], "headers": ["x-id"], "samples": 9}}
        },
    }
    return asdict(build_report(samples, ledger, ["/api"], now_s=1_800_000_010))


class StatusJSON(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header("www-authenticate", "Bearer")
            self.end_headers()
            return
        body = json.dumps(report_doc()).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def admin() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StatusJSON)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text('[[mount]]\nprefix = "/api"\napp = "a:app"\n')
    return path


def test_the_table_shows_routes_mismatches_and_noise(
    admin: str, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", str(config_path), "--url", admin, "--token", TOKEN]) == 0
    lines = capsys.readouterr().out.splitlines()
    [route] = [line for line in lines if line.startswith("/api ") and "/users/{id}" in line]
    assert route.split()[2:4] == ["7", "0.0%"]
    assert "98.0% (150)" in route and route.endswith("disagrees")
    assert "mismatch  /api /users/{id}: body $.price x3" in lines
    assert "noise     /api /users/{id}: $.ts, header x-id (9 samples)" in lines


def test_json_is_the_server_s_report_whole(
    admin: str,
    config_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    assert cli.main(["status", str(config_path), "--json", "--url", admin]) == 0
    assert json.loads(capsys.readouterr().out) == report_doc() | {"url": admin}


def test_a_wrong_token_is_unavailable(admin: str, config_path: Path) -> None:
    config = parse_config(config_path.read_text(), str(config_path))
    with pytest.raises(StatusUnavailable, match="401 Unauthorized: is the token right"):
        read_report(config, admin, "wrong")


def test_admin_bind_is_where_status_reads() -> None:
    server = SimpleNamespace(admin_bind="0.0.0.0:9100")
    config = SimpleNamespace(server=server)
    assert admin_url(config) == "http://127.0.0.1:9100/status.json"  # type: ignore[arg-type]
    server.admin_bind = ""
    assert admin_url(config) is None  # type: ignore[arg-type]
