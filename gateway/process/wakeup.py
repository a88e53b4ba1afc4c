"""Signals as bytes on a pipe, for the parent processes (supervisor, reloader).

Rules:
1. Handlers only queue: the C-level handler writes the signal number to the pipe
   (signal.set_wakeup_fd), and the process's one loop reads it when it selects on
   `read_fd`, next to its other pipes. No work runs inside a signal handler.
2. A Python-level handler must still be installed for the pipe to be written; it does
   nothing (`_queued`).
3. Pipes are non-blocking: `read_ready` never waits, and a burst of signals that fills
   the pipe loses only repeats of what is already queued.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

# Bytes read from a pipe at once: each queued signal or message is one byte.
READ_BYTES = 4096


class SignalPipe:
    """The process's signals, queued on a pipe between `install` and `restore`."""

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = tuple(signals)
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)

    @property
    def fds(self) -> tuple[int, int]:
        """Both ends, for a forked child to close."""
        return self.read_fd, self._write_fd

    def install(self) -> None:
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self.signals:
            signal.signal(signum, _queued)

    def take(self) -> bytes:
        """The signals queued so far, one byte each; never waits (rule "pipes are
        non-blocking")."""
        return read_ready(self.read_fd) or b""

    def restore(self) -> None:
        """Default dispositions back, and the pipe closed."""
        signal.set_wakeup_fd(-1)
        for signum in self.signals:
            signal.signal(signum, signal.SIG_DFL)
        for fd in self.fds:
            os.close(fd)


def read_ready(fd: int) -> bytes | None:
    """What a non-blocking pipe holds: b"" at end of file, None if nothing yet."""
    try:
        return os.read(fd, READ_BYTES)
    except (BlockingIOError, InterruptedError):
        return None


def describe_exit(code: int) -> str:
    """A child's os.waitstatus_to_exitcode() result, in words for the log."""
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"


def _queued(signum: int, frame: object) -> None:
    """The Python-level handler: the pipe already carries the signal (rule "a
    Python-level handler must still be installed")."""
