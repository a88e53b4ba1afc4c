"""What a load generator's run says, whichever tool ran it (harness/wrk.py for HTTP/1.1,
harness/h2load.py for HTTP/2), and the core it runs on."""

from __future__ import annotations

from dataclasses import dataclass

LOAD_CORE = "1"  # the server runs on core 0 (harness/procs.py)
GRACE_S = 30.0  # the tool stops on its own after its duration; this bounds one that hangs


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int  # wrk: connect + read + write + timeout; h2load fails the run instead
