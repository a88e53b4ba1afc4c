"""`gateway status CONFIG`: the migration report, read from a running server.

Rules:
1. Read only, one GET. With an admin listener (`admin_bind` in the mount file), of its
   `/status.json`: the report as the server built it (gateway/migration/report.py), with
   the routes' mismatches, learned noise and the last hour's history, which only the
   server's ledger has; a token from `--token` or GATEWAY_ADMIN_TOKEN goes as
   `Authorization: Bearer`. `--url` names either endpoint (a URL ending in /status.json
   is an admin listener's). A server that cannot be reached, that answers anything but
   200, or a mount file with neither listener is a StatusUnavailable (exit status 1)
   saying which.
2. Without an admin listener, of the metrics endpoint (`metrics_path`,
   gateway/server/metrics.py) at the mount file's first bind address, and the report is
   built here from the exposition: mounts and routes with their verdicts, but no
   mismatch samples, noise or history.
3. The figures, their order and the verdicts are those of gateway/migration/report.py;
   the thresholds and the routes kept per mount are the mount file's
   (`ready_agreement_percent`, `ready_min_compared`, `routes_per_mount`).
4. The table: one line per mount, then one per route (mount, route, requests, the new
   side's share, fallback rate, shadow agreement with its count, p99 on each side,
   verdict), then each route's most frequent mismatches and learned noise, when the
   report has them. `--json` prints the report whole.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from gateway.config.bind import Bind
from gateway.config.loader import Config
from gateway.errors import GatewayError
from gateway.migration import report
from gateway.migration.report import DEFAULT_THRESHOLDS, TOP_ROUTES, Report, Thresholds, quantile
from gateway.server.metrics import parse_exposition

__all__ = ["StatusUnavailable", "build_report", "quantile", "render_json", "render_table", "run"]

# How long to wait for the server's answer. Collecting takes milliseconds even with many
# workers; a worker too busy to answer within 5 s is news the user should get, rather
# than a script that hangs.
FETCH_TIMEOUT_S = 5.0
# Addresses that mean "every interface": the report reaches them over loopback.
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class StatusUnavailable(GatewayError):
    """The metrics cannot be read (exit status 1)."""


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


STATUS_JSON = "/status.json"
TOKEN_ENV = "GATEWAY_ADMIN_TOKEN"


def admin_url(config: Config) -> str | None:
    """The admin listener's /status.json, if the mount file has one (rule "read only").
    `admin_bind` is read with getattr: it is the admin listener's setting."""
    bind: str | Bind = getattr(config.server, "admin_bind", "")
    if not bind:
        return None
    if isinstance(bind, Bind):
        return f"http://{_host(bind)}:{bind.port}{STATUS_JSON}"
    host, _, port = str(bind).rpartition(":")
    host = ANY_ADDRESS.get(host.strip("[]"), host.strip("[]"))
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{STATUS_JSON}"


def fetch(url: str, token: str = "") -> str:
    """The body at `url` (http, https, http+unix with a %-quoted socket path)."""
    parts = urllib.parse.urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = _connection(parts)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise StatusUnavailable(f"cannot read {url}: {exc}; is the server running?") from exc
    finally:
        connection.close()
    if response.status != 200:
        reason = f"{response.status} {response.reason}"
        hint = "is the token right?" if response.status == 401 else "is it on in the server?"
        raise StatusUnavailable(f"{url} answered {reason}: {hint}")
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


# -- the figures (gateway/migration/report.py builds them) ------------------------------


def build_report(
    url: str,
    text: str,
    order: Iterable[str] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    top: int = TOP_ROUTES,
) -> Report:
    """The report from an exposition (rule "without an admin listener"); `order` lists the
    mounts of the file."""
    try:
        samples = list(parse_exposition(text))
    except ValueError as exc:
        raise StatusUnavailable(f"{url} did not answer Prometheus metrics: {exc}") from exc
    return report.build_report(
        samples, None, order, thresholds, url=url, now_s=time.time(), top=top
    )


# -- rendering ----------------------------------------------------------------------------

COLUMNS = ("MOUNT", "REQUESTS", "SHARE", "5XX", "P50", "P99", "POOL", "FALLBACK", "MISMATCH")
ROUTE_COLUMNS = (
    "MOUNT",
    "ROUTE",
    "REQUESTS",
    "NEW",
    "FALLBACK",
    "AGREEMENT (N)",
    "P99 NEW",
    "P99 LEGACY",
    "VERDICT",
)
# Mismatch kinds shown per route in the table; the JSON has all the ledger kept.
SHOWN_KINDS = 3

ReportDoc = dict[str, Any]


def render_table(report: Report | ReportDoc) -> str:
    """The report as text (rule "the table")."""
    doc = asdict(report) if isinstance(report, Report) else report
    lines = [f"metrics:  {doc['url']}"]
    lines += _aligned(COLUMNS, [_row(mount) for mount in doc["mounts"]])
    routes = doc.get("routes") or []
    if routes:
        lines.append("")
        lines += _aligned(ROUTE_COLUMNS, [_route_row(route) for route in routes])
        lines += _route_notes(routes)
    if routes:
        lines.append("")
    lines.append(f"worker restarts: {doc['worker_restarts']}")
    return "\n".join(lines)


def _aligned(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    table = [columns, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]


def _row(mount: ReportDoc) -> tuple[str, ...]:
    pool = "-"
    if mount["pool"] is not None:
        threads, busy, queued = (mount["pool"][k] for k in ("threads", "busy", "queued"))
        pool = f"{_percent(mount['pool']['saturation'])} {busy}/{threads}"
        pool += f" +{queued} queued" if queued else ""
    return (
        mount["mount"],
        str(mount["requests"]),
        _percent(mount["share"]),
        _percent(mount["error_rate"]),
        _duration(mount["p50_s"]),
        _duration(mount["p99_s"]),
        pool,
        _percent(mount["fallback_rate"]),
        _percent(mount["shadow_mismatch_rate"]),
    )


def _route_row(route: ReportDoc) -> tuple[str, ...]:
    agreement = _percent(route["shadow_agreement"])
    return (
        route["mount"],
        route["route"],
        str(route["requests"]),
        _percent(route["new_share"]),
        _percent(route["fallback_rate"]),
        f"{agreement} ({route['shadow_compared']})",
        _duration(route["new"]["p99_s"]),
        _duration(route["legacy"]["p99_s"]),
        route["verdict"],
    )


def _route_notes(routes: list[ReportDoc]) -> list[str]:
    """Each route's most frequent mismatches and its learned noise (rule "the table")."""
    lines = []
    for route in routes:
        where = f"{route['mount']} {route['route']}"
        for entry in (route.get("mismatches") or [])[:SHOWN_KINDS]:
            lines.append(f"mismatch  {where}: {entry['kind']} x{entry['count']}")
        noise = route.get("noise")
        if noise and (noise.get("json_paths") or noise.get("headers")):
            learned = [*noise.get("json_paths", []), *(f"header {h}" for h in noise["headers"])]
            samples = noise.get("samples", 0)
            lines.append(f"noise     {where}: {', '.join(learned)} ({samples} samples)")
    return ["", *lines] if lines else []


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def render_json(report: Report | ReportDoc) -> str:
    return json.dumps(asdict(report) if isinstance(report, Report) else report, indent=2)


def read_report(config: Config, url: str | None, token: str = "") -> ReportDoc:
    """The report, from the admin listener or the metrics endpoint (rule "read only")."""
    url = url or admin_url(config) or metrics_url(config)
    token = token or os.environ.get(TOKEN_ENV, "")
    text = fetch(url, token)
    if urllib.parse.urlsplit(url).path.endswith(STATUS_JSON):
        try:
            doc: ReportDoc = json.loads(text)
        except ValueError as exc:
            raise StatusUnavailable(f"{url} did not answer a report: {exc}") from exc
        doc["url"] = doc.get("url") or url
        return doc
    server = config.server
    thresholds = Thresholds(server.ready_agreement_percent, server.ready_min_compared)
    order = [mount.label for mount in config.mounts]
    built = build_report(url, text, order, thresholds, server.routes_per_mount)
    return asdict(built)


def run(config: Config, url: str | None, as_json: bool, token: str = "") -> int:
    """`gateway status`: print the report (exit 0), or raise StatusUnavailable
    (rule "read only")."""
    doc = read_report(config, url, token)
    print(render_json(doc) if as_json else render_table(doc))
    return 0
