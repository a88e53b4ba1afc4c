"""Where a shadow's mismatches go (gateway/migration/shadow.py): one JSON line each in a
file or the error log, and, per route, a ledger's note.

Rules:
1. A mismatch is one JSON line (mismatch_record), ASCII, appended to a file by one write
   (the workers' lines do not interleave), or written to the error log at warning level
   as "shadow mismatch: " and the line. The file is reopened when logrotate moves it.
2. The line is short: the request target is cut to MAX_TARGET_CHARS, and the diff is
   bounded already (gateway/migration/compare.py, rule "a difference is described
   within bounds").
3. Layer 1: stdlib only; no event loop.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from logging.handlers import WatchedFileHandler
from typing import Any, Protocol

from gateway.asgi import Scope
from gateway.migration.compare import Answer, Mismatch

log = logging.getLogger("gateway.shadow")

# The request target shown in a mismatch line is cut here; max_target_bytes (8 KiB)
# bounds it already, but a line of the log should stay readable.
MAX_TARGET_CHARS = 1024


class MismatchNotes(Protocol):
    """Where a mismatch is noted per route: gateway/migration/ledger.py MigrationLedger
    (gateway/migration/shadow.py, rule "a route for each copy")."""

    def note_mismatch(self, mount: str, route: str, kind: str, sample: dict[str, Any]) -> None: ...


class MismatchLog:
    """Where a mount's mismatches go: a JSON-lines file, or the error log
    (rule "a mismatch is one JSON line")."""

    def __init__(self, path: str) -> None:
        # WatchedFileHandler reopens the file when logrotate moves it away, and appends
        # each line with one write, so the workers' lines do not interleave.
        self._file: logging.Handler | None = None
        if path:
            self._file = WatchedFileHandler(path, encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)  # ASCII: a path's undecodable bytes stay escaped
        if self._file is None:
            log.warning("shadow mismatch: %s", line)
        else:
            self._file.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def mismatch_record(
    mount: str, shadow_mount: str, scope: Scope, primary: Answer, shadow: Answer, mismatch: Mismatch
) -> dict[str, Any]:
    """One line of shadow_log (README: Shadow), and the sample a ledger keeps: `mount`
    is the routing mount's label, `shadow_mount` the shadow's name."""
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "mount": mount,
        "shadow_mount": shadow_mount,
        "request": request_line(scope),
        "differs": list(mismatch.parts),
        "primary": primary.summary(),
        "shadow": shadow.summary(),
        "diff": mismatch.diff,
        "kind": mismatch.kind,
    }


def request_line(scope: Scope) -> str:
    """The method and the whole target as the client sent it: "GET /api/users?page=2"."""
    target: str = scope["path"]
    query = scope.get("query_string", b"")
    if query:
        target += "?" + bytes(query).decode("latin-1")
    return f"{scope['method']} {target[:MAX_TARGET_CHARS]}"
