"""The pid file (`pid = FILE`, `--pid FILE`): the server's pid, for init scripts and
`kill $(cat FILE)`.

Rules:
1. Written once every socket is bound, so the file means "this server got as far as
   serving", and before privileges are dropped (a root server writes it where root
   may, /run say). It is written whole to a temporary file beside it and renamed over
   it, so a reader never sees it half-written.
2. A file that names another live process is refused (exit status 1): two servers
   sharing a pid file would each remove the other's. A file that names no live process
   is left over from a server that died, and is replaced.
3. Removed at every exit that runs Python's cleanup (a clean stop, a failed start), and
   only while it still holds our pid; a file the server may no longer remove (it
   dropped privileges) is left with a warning. A server killed with SIGKILL leaves it:
   rule "a file that names another live process" then treats it as stale.
"""

from __future__ import annotations

import contextlib
import logging
import os

from gateway.errors import GatewayError

log = logging.getLogger("gateway.supervisor")


class PidFileError(GatewayError):
    """The pid file names another live server, or cannot be written (exit status 1)."""


class PidFile:
    """The pid file of this process, or nothing when `path` is ""."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._written = False

    def write(self) -> None:
        """Write our pid (rule "written once every socket is bound"), unless another live
        process holds the file (rule "a file that names another live process")."""
        if not self.path:
            return
        other = _holder(self.path)
        if other is not None and other != os.getpid() and _is_alive(other):
            raise PidFileError(f"pid: {self.path} names process {other}, which is running")
        temporary = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w", encoding="ascii") as file:
                file.write(f"{os.getpid()}\n")
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise PidFileError(f"pid: cannot write {self.path}: {exc.strerror or exc}") from exc
        self._written = True

    def remove(self) -> None:
        """Remove the file if we wrote it and it is still ours (rule "removed at every
        exit")."""
        if not self._written or _holder(self.path) != os.getpid():
            return
        try:
            os.unlink(self.path)
        except OSError as exc:
            log.warning("pid: cannot remove %s: %s", self.path, exc.strerror or exc)


def _holder(path: str) -> int | None:
    """The pid a pid file names, or None (no file, or not a pid)."""
    try:
        with open(path, encoding="ascii") as file:
            text = file.read(32).strip()  # a pid has at most 19 digits (2**63)
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _is_alive(pid: int) -> bool:
    if pid <= 0:  # kill(0) and kill(-1) would ask about process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
