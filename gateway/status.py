"""`gateway status CONFIG`: the migration report, read from a running server's metrics.

Rules:
1. Read only: one GET of the metrics endpoint (`metrics_path`, gateway/server/metrics.py) at the
   mount file's first bind address, or at `--url`. A server that cannot be reached, that
   answers anything but 200, or a mount file with metrics off is a StatusUnavailable
   (exit status 1) saying which.
2. The figures are the server's since it started, summed over its workers: per mount,
   its share of all requests (legacy against new), its 5xx rate, p50 and p99, its WSGI
   pool's saturation (busy threads over threads, now), its fallback rate (fallbacks over
   its requests) and its shadow mismatch rate (mismatches over copies sent).
3. p50 and p99 are estimated from the latency histogram as Prometheus'
   histogram_quantile does: linear within the bucket the quantile falls in, so they are
   as precise as the buckets (gateway/server/metrics.py LATENCY_BUCKETS_S); past the last
   finite bucket, its bound is the answer.
4. Mounts come in the mount file's order, then any the server reports that the file no
   longer has (it was edited since the server started).
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import ssl
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from gateway.config.bind import Bind
from gateway.config.loader import Config
from gateway.errors import GatewayError
from gateway.server.metrics import ROUTING_COUNTERS, Sample, parse_exposition

# How long to wait for the server's answer. Collecting takes milliseconds even with many
# workers; a worker too busy to answer within 5 s is news the user should get, rather
# than a script that hangs.
FETCH_TIMEOUT_S = 5.0
QUANTILES = (0.5, 0.99)
# Addresses that mean "every interface": the report reaches them over loopback.
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class StatusUnavailable(GatewayError):
    """The metrics cannot be read (exit status 1)."""


@dataclass
class Pool:
    threads: int
    busy: int
    queued: int
    saturation: float  # busy / threads


@dataclass
class MountStatus:
    """One mount's line of the report (rule "the figures are the server's"); rates are
    fractions, None when the denominator is 0."""

    mount: str
    requests: int = 0
    share: float | None = None
    error_rate: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None
    pool: Pool | None = None
    fallback_rate: float | None = None
    canary_requests: int = 0
    shadow_requests: int = 0
    shadow_mismatch_rate: float | None = None


@dataclass
class Report:
    url: str
    mounts: list[MountStatus] = field(default_factory=list)
    worker_restarts: int = 0


# -- where and how to read ----------------------------------------------------------------


def metrics_url(config: Config) -> str:
    """The metrics endpoint at the first bind address (rule "read only")."""
    path = config.server.metrics_path
    if not path:
        raise StatusUnavailable(
            f"metrics are off in {config.path}: set metrics_path in [server] (or pass --url)"
        )
    bind = config.server.bind[0]
    scheme = "https" if config.server.certfile else "http"
    if bind.kind == "unix":
        return f"{scheme}+unix://{urllib.parse.quote(bind.path, safe='')}{path}"
    if bind.kind != "tcp":
        raise StatusUnavailable(f"cannot reach {bind} from here: pass --url")
    return f"{scheme}://{_host(bind)}:{bind.port}{path}"


def _host(bind: Bind) -> str:
    host = ANY_ADDRESS.get(bind.host, bind.host)
    return f"[{host}]" if ":" in host else host


def fetch(url: str) -> str:
    """The exposition at `url` (http, https, http+unix with a %-quoted socket path)."""
    parts = urllib.parse.urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = _connection(parts)
    try:
        connection.request("GET", target, headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise StatusUnavailable(f"cannot read {url}: {exc}; is the server running?") from exc
    finally:
        connection.close()
    if response.status != 200:
        reason = f"{response.status} {response.reason}"
        raise StatusUnavailable(f"{url} answered {reason}: is metrics_path on in the server?")
    return body.decode("utf-8")


def _connection(parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    if parts.scheme in ("http+unix", "https+unix"):
        return UnixConnection(urllib.parse.unquote(parts.netloc), FETCH_TIMEOUT_S)
    if parts.scheme == "https":
        # The report reads this host's own server, by address: its certificate names a
        # host, not 127.0.0.1, so it is not checked (a client-certificate server needs a
        # proxy or a plain bind for this).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(parts.netloc, timeout=FETCH_TIMEOUT_S, context=context)
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.netloc, timeout=FETCH_TIMEOUT_S)
    raise StatusUnavailable(f"cannot read {urllib.parse.urlunsplit(parts)}: not an http URL")


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (a `unix:` bind)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


# -- the figures --------------------------------------------------------------------------


def build_report(url: str, text: str, order: Iterable[str] = ()) -> Report:
    """The report from an exposition; `order` lists the mounts of the file
    (rule "mounts come in the mount file's order")."""
    try:
        samples = list(parse_exposition(text))
    except ValueError as exc:
        raise StatusUnavailable(f"{url} did not answer Prometheus metrics: {exc}") from exc
    by_mount: dict[str, list[Sample]] = defaultdict(list)
    restarts = 0.0
    for sample in samples:
        if "mount" in sample.labels:
            by_mount[sample.labels["mount"]].append(sample)
        elif sample.name == "gateway_worker_restarts_total":
            restarts += sample.value
    labels = list(dict.fromkeys([*order, *by_mount]))
    mounts = [mount_status(label, by_mount.get(label, [])) for label in labels]
    total = sum(m.requests for m in mounts)
    for mount in mounts:
        mount.share = _ratio(mount.requests, total)
    return Report(url, mounts, int(restarts))


def mount_status(label: str, samples: list[Sample]) -> MountStatus:
    """One mount's figures from its samples (rule "the figures are the server's")."""
    total: dict[str, float] = defaultdict(float)
    buckets: list[tuple[float, float]] = []
    for sample in samples:
        if sample.name == "gateway_request_duration_seconds_bucket":
            buckets.append((float(sample.labels["le"]), sample.value))
        elif sample.name == "gateway_requests_total":
            total[sample.labels["status_class"]] += sample.value
        else:
            total[sample.name] += sample.value
    requests = int(sum(total[c] for c in ("2xx", "3xx", "4xx", "5xx", "none")))
    status = MountStatus(label, requests, error_rate=_ratio(total["5xx"], requests))
    status.p50_s, status.p99_s = (quantile(q, buckets) for q in QUANTILES)
    status.pool = _pool(total)
    counted = {event: total[f"{name}_total"] for event, (name, _) in ROUTING_COUNTERS.items()}
    status.fallback_rate = _ratio(counted["fallback"], requests)
    status.canary_requests = int(counted["canary"])
    status.shadow_requests = int(counted["shadow"])
    status.shadow_mismatch_rate = _ratio(counted["shadow_mismatch"], counted["shadow"])
    return status


def _pool(total: dict[str, float]) -> Pool | None:
    threads = int(total["gateway_wsgi_pool_threads"])
    if not threads:
        return None  # an ASGI mount
    busy = int(total["gateway_wsgi_pool_busy"])
    return Pool(threads, busy, int(total["gateway_wsgi_pool_queued"]), busy / threads)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram's cumulative (upper bound, count) buckets
    (rule "p50 and p99 are estimated"); None when it counted nothing."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bucket: its bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# -- rendering ----------------------------------------------------------------------------

COLUMNS = ("MOUNT", "REQUESTS", "SHARE", "5XX", "P50", "P99", "POOL", "FALLBACK", "MISMATCH")


def render_table(report: Report) -> str:
    rows = [COLUMNS, *(_row(mount) for mount in report.mounts)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [f"metrics:  {report.url}"]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines.append(f"worker restarts: {report.worker_restarts}")
    return "\n".join(lines)


def _row(mount: MountStatus) -> tuple[str, ...]:
    pool = "-"
    if mount.pool is not None:
        pool = f"{_percent(mount.pool.saturation)} {mount.pool.busy}/{mount.pool.threads}"
        pool += f" +{mount.pool.queued} queued" if mount.pool.queued else ""
    return (
        mount.mount,
        str(mount.requests),
        _percent(mount.share),
        _percent(mount.error_rate),
        _duration(mount.p50_s),
        _duration(mount.p99_s),
        pool,
        _percent(mount.fallback_rate),
        _percent(mount.shadow_mismatch_rate),
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2)


def run(config: Config, url: str | None, as_json: bool) -> int:
    """`gateway status`: print the report (exit 0), or raise StatusUnavailable
    (rule "read only")."""
    url = url or metrics_url(config)
    order = [mount.label for mount in config.mounts]
    report = build_report(url, fetch(url), order)
    print(render_json(report) if as_json else render_table(report))
    return 0
