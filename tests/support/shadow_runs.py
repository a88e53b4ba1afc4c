"""Waiting on a served shadow's copies, and reading its mismatch log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.deadlines import wait_until
from support.servers import Server
from support.ws_clients import DEADLINE_S


def settle(server: Server, copies: int) -> None:
    """Wait until `copies` copies have started in all, and none is still running."""
    shadows = server.worker.shadows
    wait_until(lambda: shadows.started >= copies and shadows.in_flight == 0, DEADLINE_S)


def mismatches(server: Server, name: str = "mismatches.jsonl") -> list[dict[str, Any]]:
    """The lines of the shadow log `name`, beside the server's mount file."""
    path = Path(server.config.path).parent / name
    return [json.loads(line) for line in path.read_text().splitlines()]
