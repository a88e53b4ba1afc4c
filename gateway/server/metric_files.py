"""Room on disk for prometheus_client's multiprocess files
(gateway/server/metrics.py, rule "a full or read-only metrics directory").

prometheus_client maps each process's metric files into memory and writes values
straight into the mapping. On a full disk (a small tmpfs, say) a write to a page the
disk cannot back is a SIGBUS, which kills the process with no word, at start or in a
worker started later. Rules:
1. At start the directory is checked (`check_directory`): one process's files' room is
   reserved and released, so a missing, read-only or full directory is a
   MetricsDirectoryError (exit 1, one line) before any file is mapped.
2. Every value is made through ReservingValues, which reserves the disk space of its
   entry (posix_fallocate: ENOSPC comes from a call, not as a SIGBUS) before
   prometheus_client maps and writes it, growing the file the way it does.
3. A value whose room cannot be reserved lives in memory, out of the totals: the
   worker serves on, logs once, and counts every write to it (`dropped_writes`).
4. prometheus_client is not imported here (gateway/server/metrics.py owns it): its classes,
   its key format and its files' initial size are handed in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence

from gateway.errors import GatewayError

log = logging.getLogger("gateway.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The files a worker's metrics make: counters, histograms, and live-summed gauges.
FILES_PER_PROCESS = 3
# A value's entry in a file: its key's length (4 bytes), the key padded to 8, and two
# doubles (value, timestamp), as prometheus_client's MmapedDict lays it out.
ENTRY_OVERHEAD_BYTES = 4 + 8 + 16
# The header before a file's first entry: how many bytes are used (MmapedDict).
HEADER_BYTES = 8

# This process's metric writes that went nowhere (rule "a value whose room cannot be
# reserved").
_dropped_writes = 0


class MetricsDirectoryError(GatewayError):
    """The metrics directory cannot take the files (exit status 1, before serving)."""


def make_directory() -> str:
    """A new temporary directory for the files (MetricsDirectoryError if TMPDIR is full
    or read-only)."""
    try:
        return tempfile.mkdtemp(prefix="gateway-metrics-")
    except OSError as exc:
        where = tempfile.gettempdir()
        raise MetricsDirectoryError(
            f"cannot make a metrics directory in {where} (TMPDIR): {exc.strerror}"
        ) from None


def check_directory(directory: str, file_bytes: int) -> None:
    """Reserve, then remove, the room of one process's files of `file_bytes`
    (rule "at start the directory is checked")."""
    probe = os.path.join(directory, f"gateway-check-{os.getpid()}.db")
    try:
        _reserve(probe, FILES_PER_PROCESS * file_bytes)
    except OSError as exc:
        raise MetricsDirectoryError(
            f"metrics directory {directory} ({MULTIPROC_ENV}) is not usable: {exc.strerror}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)


def dropped_writes() -> int:
    """This process's metric writes that found no room
    (rule "a value whose room cannot be reserved")."""
    return _dropped_writes


class ReservingValues:
    """prometheus_client's value class for the multiprocess mode, with the room of each
    value reserved before it is made (rule "every value is made through ReservingValues"),
    or the value kept in memory (rule "a value whose room cannot be reserved")."""

    _multiprocess = True  # what gateway/server/metrics.py `multiprocess()` asks

    def __init__(
        self,
        file_values: type,
        memory_values: type,
        key: Callable[..., str],
        initial_file_bytes: int,
    ) -> None:
        self._file_values = file_values
        self._dropped_values = _dropped_value_class(memory_values)
        self._key = key  # prometheus_client's mmap_key
        self._initial_file_bytes = initial_file_bytes
        self._warned = False

    def __call__(  # prometheus_client's signature for a value class
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Sequence[str],
        labelvalues: Sequence[str],
        help_text: str,
        multiprocess_mode: str = "",
        **kwargs: object,
    ) -> object:
        args = (typ, metric_name, name, labelnames, labelvalues, help_text)
        prefix = f"gauge_{multiprocess_mode}" if typ == "gauge" else typ
        path = os.path.join(os.environ[MULTIPROC_ENV], f"{prefix}_{os.getpid()}.db")
        entry = len(self._key(metric_name, name, labelnames, labelvalues, help_text))
        try:
            _reserve_entry(path, entry + ENTRY_OVERHEAD_BYTES, self._initial_file_bytes)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.error(
                    "cannot write to %s (%s): serving on, metric writes dropped and counted",
                    path,
                    exc.strerror,
                )
            return self._dropped_values(*args, **kwargs)
        return self._file_values(*args, multiprocess_mode=multiprocess_mode, **kwargs)


def _reserve_entry(path: str, entry_bytes: int, initial_bytes: int) -> None:
    """Make sure the file has disk space for one more entry, growing it the way
    prometheus_client does (from its initial size, doubling)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        used = int.from_bytes(os.pread(fd, 4, 0), sys.byteorder, signed=True) if size else 0
        wanted = size or initial_bytes
        while max(used, HEADER_BYTES) + entry_bytes > wanted:
            wanted *= 2
        try:
            os.posix_fallocate(fd, 0, wanted)  # allocated, not sparse: ENOSPC comes here
        except OSError:
            if not size:  # an empty file would break every scrape (it cannot be mapped)
                os.remove(path)
            raise
    finally:
        os.close(fd)


def _reserve(path: str, size: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _dropped_value_class(memory_values: type) -> type:
    """prometheus_client's in-memory value, counting each write as dropped."""

    class DroppedValue(memory_values):  # type: ignore[misc]
        def inc(self, amount: float) -> None:
            _count_dropped()
            super().inc(amount)

        def set(self, value: float, timestamp: float | None = None) -> None:
            _count_dropped()
            super().set(value, timestamp)

    return DroppedValue


def _count_dropped() -> None:
    global _dropped_writes
    _dropped_writes += 1
