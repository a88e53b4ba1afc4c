"""HTTP/1.1 pays nothing for HTTP/2's existence (issue 16, point 8): a worker loads h2
and the HTTP/2 machinery at its first HTTP/2 connection, never before
(gateway/server/connection.py, rule "HTTP/2 takes the connection over").

`gateway serve` runs as a process of its own, since the test process has imported h2
itself; tests/apps/module_probe.py answers from inside the worker whether a module is in
its sys.modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S
from support.processes import GatewayProcess, mount_file

# h2 itself, and the gateway's modules that wrap it (only they import it).
HTTP2_MODULES = ("h2", "gateway.http.h2_session", "gateway.server.h2_connection")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    config = mount_file(tmp_path / "gateway.toml", "workers = 1", app="module_probe:app")
    process = GatewayProcess(config, "--no-access-log")
    try:
        process.wait_for_line("serving on")
        yield process
    finally:
        process.stop()


def answer(client: httpx.Client, module: str) -> str:
    response = client.get(f"/?{module}")
    assert response.status_code == 200
    return response.text


def http1_answers(url: str) -> list[str]:
    """What the worker says of each HTTP/2 module, over HTTP/1.1: each asked twice on one
    keep-alive connection, then once on a connection of its own."""
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        answers = [answer(client, module) for module in HTTP2_MODULES for _ in range(2)]
    for module in HTTP2_MODULES:
        with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
            answers.append(answer(client, module))
    return answers


def test_http1_requests_leave_h2_unloaded_until_an_h2c_connection(
    gateway: GatewayProcess,
) -> None:
    before = http1_answers(gateway.url)
    assert all(" not loaded in " in text for text in before), before
    with httpx.Client(
        base_url=gateway.url, http1=False, http2=True, timeout=CLIENT_TIMEOUT_S
    ) as h2c:
        response = h2c.get("/?h2")
    assert response.http_version == "HTTP/2"
    assert response.text.startswith("h2 loaded in ")
    # One worker: it has them now, for the HTTP/1.1 connections after too.
    after = http1_answers(gateway.url)
    assert all(" loaded in " in text and "not" not in text for text in after), after
