"""The suite's fixtures; the helpers they use live in tests/support/.

Rules:
1. Fixtures only. A test imports a helper from `support.<module>` (tests/support/),
   never from this file: pytest imports a conftest under a name of its own choosing
   (`--import-mode=importlib`), so `from conftest import ...` is not an interface.
2. tests/ is on sys.path through pytest's `pythonpath` setting (pyproject.toml), so
   `support` imports the same way under every import mode; mypy finds it the same way,
   since tests/ has no __init__.py and so is a root of module names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S
from support.servers import HTTP_SESSIONS, Server, write_config


@pytest.fixture(params=HTTP_SESSIONS)
def serve(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Server]]:
    """`serve(toml_text)` starts a server for the test and stops it afterwards.

    Parametrised over the HTTP sessions (`[server] http`), so every test that serves
    runs once per parser: the two must behave the same.
    """
    servers: list[Server] = []

    def start(text: str) -> Server:
        text = text.replace("[server]", f"[server]\nhttp = {request.param!r}", 1)
        server = Server(write_config(tmp_path, text)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """An httpx client for the module's `server` fixture (a module may define its own)."""
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        yield client
