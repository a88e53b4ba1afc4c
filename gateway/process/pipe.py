"""The pipe between a worker and its supervisor, with both of its ends: the messages, the
worker's end (SupervisorLink, and the Heartbeat that writes it), and the supervisor's
(WorkerLink). One module, so that what one end writes and the other reads is read in
one place (as gunicorn keeps both ends of its heartbeat in `workertmp.py`).

Rules:
1. One byte per message (Message), written by the worker, read by the supervisor: READY
   once lifespan is done in every mount and the sockets listen, BEAT from the event loop,
   RETIRE when max_requests is reached. The supervisor reads whatever has piled up at
   once, so a message is a byte that is present or not, never a count.
2. Beats come from the event loop itself, never from a side thread, which would beat on
   while the loop is stuck: a beat proves the loop runs (DESIGN §4). They come every
   MAX_BEAT_INTERVAL_S at most, or a quarter of worker_timeout when that is shorter.
3. The worker never blocks on the pipe: a full pipe (a supervisor busy importing apps)
   drops the message. Dropping is safe: a beat that found no room is one of many, and
   READY and RETIRE, each sent once, find room, since only beats come before them and
   a pipe fills (64 KiB on Linux) only after hours of beats that nobody reads.
4. The pipe also tells the worker when its supervisor is gone (killed with SIGKILL, so
   it could stop nobody): a write fails with EPIPE, or the worker has a new parent pid.
   The next beat then begins a graceful stop, so an orphan stops within one interval and
   frees the port for a restart, instead of serving a config nobody supervises.
5. Both ends are made before the fork (Pipe.open) and each process keeps its own: the
   child its write end, the supervisor its read end, non-blocking.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from gateway.process.wakeup import read_ready

log = logging.getLogger("gateway.server")

# A beat this often, at most; a quarter of worker_timeout when that is shorter, so a
# late beat or two never looks like a stuck loop (rule "beats come").
MAX_BEAT_INTERVAL_S = 1.0


class Message(bytes, Enum):
    """What a worker tells its supervisor, one byte each (rule "one byte per message")."""

    READY = b"r"  # lifespan done in every mount, listening
    BEAT = b"b"  # the loop is alive
    RETIRE = b"m"  # max_requests reached: start my replacement, then stop me


def decode(data: bytes) -> frozenset[Message]:
    """The messages among the bytes read at once (rule "one byte per message")."""
    return frozenset(message for message in Message if message.value in data)


@dataclass(frozen=True)
class Pipe:
    """Both ends of one worker's pipe, made before the fork (rule "both ends are made")."""

    read_fd: int
    write_fd: int
    supervisor_pid: int  # taken before the fork: no race with the supervisor's death

    @classmethod
    def open(cls) -> Pipe:
        read_fd, write_fd = os.pipe()
        return cls(read_fd, write_fd, os.getpid())

    def worker_end(self) -> SupervisorLink:
        """In the forked worker: its end, the supervisor's closed."""
        os.close(self.read_fd)
        return SupervisorLink(self.write_fd, self.supervisor_pid)

    def supervisor_end(self) -> WorkerLink:
        """In the supervisor, after the fork: its end, the worker's closed."""
        os.close(self.write_fd)
        return WorkerLink(self.read_fd)


# -- the worker's end ---------------------------------------------------------------------


class SupervisorLink:
    """The worker's end: written from the event loop only (rule "beats come"), and how
    the worker learns that the supervisor is gone (rule "the pipe also tells")."""

    def __init__(self, fd: int, supervisor_pid: int) -> None:
        self.fd = fd
        self._supervisor_pid = supervisor_pid
        self._pipe_broken = False
        os.set_blocking(fd, False)

    def send(self, message: Message) -> None:
        try:
            os.write(self.fd, message)
        except BlockingIOError:
            pass  # a full pipe: the supervisor is behind, not gone; drop the message
        except BrokenPipeError:
            self._pipe_broken = True  # its read end closed: the supervisor is gone

    @property
    def supervisor_gone(self) -> bool:
        return self._pipe_broken or os.getppid() != self._supervisor_pid


class Stoppable(Protocol):
    """What the heartbeat asks of the worker it beats for (gateway/process/worker.py)."""

    @property
    def stopping(self) -> bool: ...
    def request_stop(self, fast: bool = False) -> None: ...


class Heartbeat:
    """A beat from the running event loop every interval; a beat that finds the
    supervisor gone begins a graceful stop (rule "the pipe also tells the worker")."""

    def __init__(self, worker: Stoppable, link: SupervisorLink, worker_timeout_s: float) -> None:
        self._worker = worker
        self._link = link
        self._orphaned = False
        self._interval_s = min(MAX_BEAT_INTERVAL_S, worker_timeout_s / 4)
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_soon(self._beat)

    def _beat(self) -> None:
        self._link.send(Message.BEAT)
        if not self._orphaned and self._link.supervisor_gone:
            self._orphaned = True
            log.warning("the supervisor is gone: stopping gracefully")
            if not self._worker.stopping:  # a second request_stop would be a fast stop
                self._worker.request_stop()
        self._timer = self._loop.call_later(self._interval_s, self._beat)

    def stop(self) -> None:
        self._timer.cancel()


# -- the supervisor's end -----------------------------------------------------------------


class WorkerLink:
    """The supervisor's end of one worker's pipe: non-blocking, open until the worker's
    end closes (it exited, mostly; SIGCHLD tells the rest)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.open = True  # until end of file
        os.set_blocking(fd, False)

    def read(self) -> bytes | None:
        """The messages that piled up since the last read (rule "one byte per message");
        b"" at end of file, and from then on None, as when nothing came."""
        if not self.open:
            return None
        data = read_ready(self.fd)
        if data == b"":
            self.open = False
        return data

    def close(self) -> None:
        os.close(self.fd)
