"""What third-party suites found (issue 13, point 15), with `gateway serve` as a subprocess."""

from __future__ import annotations

from pathlib import Path

import httpx
from support.processes import GatewayProcess, mount_file

# A client's wait for one answer: far above any answer here; only a hung server hits it.
CLIENT_TIMEOUT_S = 10.0


def test_a_scope_blind_app_is_served_without_lifespan_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """The 10-line app that streams until `send` raises: at startup its first `send`
    raises (not a lifespan message), `auto` serves it, and SIGTERM stops the server."""
    config = mount_file(tmp_path / "gateway.toml", app="scope_blind:app")
    gateway = GatewayProcess(config)
    try:
        line = gateway.wait_for_line("does not support lifespan")
        assert "not a lifespan message" in line
        gateway.wait_for_line("serving on")
        with httpx.stream("GET", gateway.url + "/", timeout=CLIENT_TIMEOUT_S) as response:
            assert response.status_code == 200
            assert next(response.iter_bytes()).startswith(b"tick")
    finally:
        status = gateway.stop()
    assert status == 0
