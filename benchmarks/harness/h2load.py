"""The HTTP/2 load generator: h2load (nghttp2's client; Debian's nghttp2-client), one
thread pinned to the load core, and what its output says.

Rules:
1. Cleartext with prior knowledge (h2c, RFC 9113 §3.3): an `http://` URL, so h2load opens
   every connection with the preface: `--connections` connections (64), each with
   `--streams` concurrent streams (10).
2. One h2load process per run: its own warm-up (`--warm-up-time`) then the measured
   duration (`-D`) on the same connections; req/s is over the measured part only.
3. Every request must succeed: a failed, errored or timed-out request fails the run
   (RuntimeError), it is not a figure. Responses other than 2xx are counted, as wrk's
   are, and flag the run.
4. Latency percentiles come from h2load's per-request log (`--log-file`: start time,
   status, microseconds to the end of the response), since its summary gives only the
   min, max, mean and deviation.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.load import LOAD_CORE, LoadResult

FINISHED = re.compile(r"^finished in [\d.]+\w*, ([\d.]+) req/s", re.M)
REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed,"
    r" (\d+) errored, (\d+) timeout",
    re.M,
)
STATUS_CODES = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
FAILED_STREAM = -1  # the status column of a stream that failed, in the log file


def h2load_argv(url: str, duration: float, warmup: float, connections: int, streams: int,
                log: Path) -> list[str]:  # fmt: skip
    """One h2load thread on the load core: warm-up, then the measured run (rule "one
    h2load process per run")."""
    return [
        "taskset", "-c", LOAD_CORE, "h2load", "-t1", f"-c{connections}", f"-m{streams}",
        f"-D{max(1, round(duration))}", f"--warm-up-time={max(1, round(warmup))}",
        f"--log-file={log}", url,
    ]  # fmt: skip


def parse_h2load(text: str, log: str) -> LoadResult:
    """Read h2load's summary (`text`) and its per-request log (`log`); raise RuntimeError
    on any request that did not succeed (rule "every request must succeed")."""
    finished, requests = FINISHED.search(text), REQUESTS.search(text)
    codes = STATUS_CODES.search(text)
    if not finished or not requests or not codes:
        raise RuntimeError(f"cannot read h2load output: {text[-300:]!r}")
    total, _, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    if failed or errored or timeout or not succeeded:
        raise RuntimeError(
            f"h2load: {failed} failed, {errored} errored, {timeout} timed out"
            f" of {total} requests ({succeeded} succeeded)"
        )
    p50, p99 = latency_percentiles_ms(log, (50, 99))
    return LoadResult(
        rps=float(finished[1]),
        p50_ms=p50,
        p99_ms=p99,
        requests=done,
        non_2xx=sum(int(n) for n in codes.groups()[1:]),
        socket_errors=0,  # rule "every request must succeed": h2load has none to report
    )


def latency_percentiles_ms(log: str, percentiles: tuple[int, ...]) -> list[float]:
    """Nearest-rank percentiles of the per-request times in h2load's --log-file (rule
    "latency percentiles come from h2load's per-request log"); NaN when it is empty."""
    times: list[int] = []
    for line in log.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and int(fields[1]) != FAILED_STREAM:
            times.append(int(fields[2]))
    if not times:
        return [float("nan")] * len(percentiles)
    times.sort()
    ranks = [max(0, -(-p * len(times) // 100) - 1) for p in percentiles]  # ceil, 0-based
    return [times[rank] / 1000 for rank in ranks]
