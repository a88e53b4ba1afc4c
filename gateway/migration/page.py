"""The migration page (issue 17, point 3): the report (gateway/migration/report.py's
JSON shape, spec "The report") as one HTML document, which the admin listener serves at
`/` (gateway/server/admin.py).

Rules:
1. Offline: the page names no URL at all. Its style is inline, its chart inline SVG
   (HTML needs no namespace for it), and it loads no script, font or image; it works
   on a machine cut off from the internet.
2. Server-rendered and legible without JavaScript: tables, and `<details>` elements for
   the mismatches, which a browser opens without a script. It refreshes itself with
   `<meta http-equiv="refresh">` every REFRESH_S.
3. Everything that comes from the report is escaped (html.escape, quotes too): route
   templates come from clients' paths, mismatch samples from the apps' answers.
4. Each route is one row `<tr class="route" data-mount=.. data-route=.. data-verdict=..>`
   (the hooks tests and scripts read), in the report's order; its mismatches and learned
   noise, when it has any, are the row after it.
5. The chart is the share served by the new apps per minute over the last CHART_MINUTES
   minutes of `history`; a minute without requests is a gap in the line, not a zero.
6. Layer 1: stdlib only; it reads a dict and returns a str.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

# Often enough to watch a canary move, rarely enough that a page left open in a tab
# costs the server one report every few seconds.
REFRESH_S = 5
# The history the ledger keeps (spec "The ledger"): the last hour, by minute.
CHART_MINUTES = 60
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 720, 180, 36
# A mismatch sample is short already (spec "The ledger"); this bounds what one sample
# may add to the page if a record grows.
MAX_SAMPLE_CHARS = 4000
VERDICTS = ("served by new", "ready to cut over", "still falls back", "disagrees", "collecting")
ROUTE_COLUMNS = (
    "Mount",
    "Route",
    "Verdict",
    "Requests",
    "Served by new",
    "Fallback rate",
    "Shadow agreement",
    "p50 new / legacy",
    "p99 new / legacy",
    "5xx new / legacy",
)
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.meta { color: #555; }
table { border-collapse: collapse; margin-top: .4em; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td { vertical-align: top; }
th { background: #f3f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; padding: .05em .4em; border-radius: .3em; white-space: nowrap; }
.v-served-by-new { background: #d7f5dd; } .v-ready-to-cut-over { background: #d6e8ff; }
.v-still-falls-back { background: #ffe8c2; } .v-disagrees { background: #ffd3d3; }
.v-collecting { background: #eee; }
pre { background: #f7f7f9; padding: .4em; max-width: 60em; white-space: pre-wrap; }
del { background: #ffd3d3; } ins { background: #d7f5dd; text-decoration: none; }
svg text { font-size: 11px; fill: #555; }
"""


def render_page(report: Mapping[str, Any]) -> str:
    """The whole page for `report` (module rules)."""
    routes = list(report.get("routes") or [])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        "<title>gateway: migration</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Migration</h1>",
        _meta_line(report),
        "<h2>Share served by the new apps, last hour</h2>",
        render_chart(report.get("history") or []),
        f"<h2>Routes ({len(routes)})</h2>",
        _routes_table(routes) if routes else "<p>No route has been recorded yet.</p>",
        "<h2>Mounts</h2>",
        _mounts_table(report.get("mounts") or []),
        "</body></html>",
    ]
    return "\n".join(parts)


def _meta_line(report: Mapping[str, Any]) -> str:
    generated = report.get("generated_at")
    when = _utc(generated) if isinstance(generated, int | float) else "-"
    thresholds = report.get("thresholds") or {}
    ready = (
        f"ready to cut over: shadow agreement &ge; {_e(thresholds.get('agreement_percent', '-'))}% "
        f"over at least {_e(thresholds.get('min_compared', '-'))} compared requests"
    )
    restarts = _e(report.get("worker_restarts", 0))
    return (
        f'<p class="meta">{_e(report.get("url", ""))} &middot; as of {when} &middot; '
        f"{ready} &middot; worker restarts: {restarts} &middot; "
        f"refreshes every {REFRESH_S} s</p>"
    )


# -- the routes -------------------------------------------------------------------------


def _routes_table(routes: Iterable[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{name}</th>" for name in ROUTE_COLUMNS)
    rows = []
    for route in routes:
        rows.append(_route_row(route))
        details = _route_details(route)
        if details:
            rows.append(f'<tr class="route-details"><td colspan="{len(ROUTE_COLUMNS)}">')
            rows.append(details + "</td></tr>")
    body = "\n".join(rows)
    return f'<table id="routes"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _route_row(route: Mapping[str, Any]) -> str:
    verdict = str(route.get("verdict", ""))
    new, legacy = route.get("new") or {}, route.get("legacy") or {}
    compared = route.get("shadow_compared", 0)
    agreement = _percent(route.get("shadow_agreement"))
    cells = [
        f"<td>{_e(route.get('mount', ''))}</td>",
        f"<td><code>{_e(route.get('route', ''))}</code></td>",
        f'<td><span class="verdict v-{verdict_class(verdict)}">{_e(verdict)}</span></td>',
        _num(_e(route.get("requests", 0))),
        _num(_percent(route.get("new_share"))),
        _num(_percent(route.get("fallback_rate"))),
        _num(f"{agreement} ({_e(compared)})" if compared else "-"),
        _num(f"{_seconds(new.get('p50_s'))} / {_seconds(legacy.get('p50_s'))}"),
        _num(f"{_seconds(new.get('p99_s'))} / {_seconds(legacy.get('p99_s'))}"),
        _num(f"{_percent(new.get('error_rate'))} / {_percent(legacy.get('error_rate'))}"),
    ]
    hooks = (
        f'data-mount="{_e(route.get("mount", ""))}" data-route="{_e(route.get("route", ""))}" '
        f'data-verdict="{_e(verdict)}"'
    )
    return f'<tr class="route" {hooks}>' + "".join(cells) + "</tr>"


def verdict_class(verdict: str) -> str:
    """A CSS class name for a verdict: "still falls back" is "still-falls-back"; one
    the page does not know is "collecting"'s grey."""
    return verdict.replace(" ", "-") if verdict in VERDICTS else "collecting"


def _route_details(route: Mapping[str, Any]) -> str:
    """Rule "each route is one row": its mismatches and its learned noise, or ""."""
    mismatches = list(route.get("mismatches") or [])
    noise = route.get("noise") or {}
    parts = []
    for mismatch in mismatches:
        summary = f"{_e(mismatch.get('kind', '?'))}: {_e(mismatch.get('count', 0))} times"
        sample = render_sample(mismatch.get("sample") or {})
        parts.append(f'<details class="mismatch"><summary>{summary}</summary>{sample}</details>')
    if noise.get("json_paths") or noise.get("headers"):
        parts.append(_noise_line(noise))
    return "\n".join(parts)


def _noise_line(noise: Mapping[str, Any]) -> str:
    paths = ", ".join(f"<code>{_e(p)}</code>" for p in noise.get("json_paths") or []) or "-"
    headers = ", ".join(f"<code>{_e(h)}</code>" for h in noise.get("headers") or []) or "-"
    samples = _e(noise.get("samples", 0))
    return (
        f'<p class="noise">Learned noise (left out of the comparison; from {samples} '
        f"double calls to the primary): JSON paths {paths}; headers {headers}</p>"
    )


def render_sample(sample: Mapping[str, Any]) -> str:
    """One mismatch sample (a shadow mismatch record) as a diff: the request, the
    statuses, then the JSON paths that differ (primary deleted, shadow inserted) or the
    byte windows; anything else as its JSON."""
    request = _e(sample.get("request", ""))
    primary, shadow = sample.get("primary") or {}, sample.get("shadow") or {}
    status = f"{_e(primary.get('status', '?'))} &rarr; {_e(shadow.get('status', '?'))}"
    lines = [f"<p><code>{request}</code> &middot; status {status}</p>"]
    diff = sample.get("diff") or {}
    if isinstance(diff.get("json"), list):
        lines.append(_json_diff(diff["json"]))
    elif "offset" in diff:
        lines.append(
            f"<p>bodies differ at byte {_e(diff['offset'])}:</p>"
            f"<pre><del>{_e(diff.get('primary', ''))}</del>\n"
            f"<ins>{_e(diff.get('shadow', ''))}</ins></pre>"
        )
    else:
        text = json.dumps(sample, indent=1, default=str)[:MAX_SAMPLE_CHARS]
        lines.append(f"<pre>{_e(text)}</pre>")
    return "\n".join(lines)


def _json_diff(entries: Iterable[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(entry.get('path', ''))}</code></td>"
        f"<td><del>{_e(entry.get('primary', '(absent)'))}</del></td>"
        f"<td><ins>{_e(entry.get('shadow', '(absent)'))}</ins></td></tr>"
        for entry in entries
    )
    head = "<tr><th>JSON path</th><th>primary</th><th>shadow</th></tr>"
    return f'<table class="diff">{head}{rows}</table>'


# -- the mounts ---------------------------------------------------------------------------


# The mount-level figures (gateway/status.py MountStatus), in the order of its table.
MOUNT_COLUMNS = (
    "mount",
    "requests",
    "share",
    "error_rate",
    "p50_s",
    "p99_s",
    "fallback_rate",
    "canary_requests",
    "shadow_requests",
    "shadow_mismatch_rate",
)


def _mounts_table(mounts: Iterable[Mapping[str, Any]]) -> str:
    mounts = list(mounts)
    if not mounts:
        return "<p>No mount has been recorded yet.</p>"
    columns = MOUNT_COLUMNS
    head = "".join(f"<th>{name.replace('_', ' ')}</th>" for name in columns)
    rows = []
    for mount in mounts:
        cells = [f"<td>{_e(mount.get('mount', ''))}</td>"]
        cells += [_num(_figure(name, mount.get(name))) for name in columns[1:]]
        rows.append(f'<tr class="mount">{"".join(cells)}</tr>')
    body = "".join(rows)
    return f'<table id="mounts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(name: str, value: object) -> str:
    if name.endswith("_s"):
        return _seconds(value)
    if name.endswith("rate") or name == "share":
        return _percent(value)
    return "-" if value is None else _e(value)


# -- the chart ----------------------------------------------------------------------------


def render_chart(history: Iterable[Mapping[str, Any]]) -> str:
    """Rule "the chart": an inline SVG line of the new apps' share per minute."""
    minutes = {
        int(m["minute"]) // 60: m for m in history if isinstance(m.get("minute"), int | float)
    }
    if not minutes:
        return '<p class="chart">No traffic recorded in the last hour.</p>'
    last = max(minutes)
    first = last - CHART_MINUTES + 1
    width, height, margin = CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN
    plot_w, plot_h = width - 2 * margin, height - 2 * margin
    segments: list[list[str]] = [[]]
    dots = []
    for minute in range(first, last + 1):
        entry = minutes.get(minute) or {}
        total = entry.get("new", 0) + entry.get("legacy", 0)
        if not total:
            segments.append([])  # rule "the chart": a gap, not a zero
            continue
        share = entry["new"] / total
        x = margin + plot_w * (minute - first) / (CHART_MINUTES - 1)
        y = margin + plot_h * (1 - share)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        label = f"{_utc(minute * 60)}: {share:.0%} new of {total}"
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{label}</title></circle>')
    lines = "".join(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#2463eb" stroke-width="2"/>'
        for points in segments
        if len(points) > 1
    )
    bottom, right = height - margin, width - margin
    axes = (
        f'<line x1="{margin}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{margin}" y1="{margin}" x2="{right}" y2="{margin}" stroke="#ddd"/>'
        f'<text x="{margin - 4}" y="{margin + 4}" text-anchor="end">100%</text>'
        f'<text x="{margin - 4}" y="{bottom + 4}" text-anchor="end">0%</text>'
        f'<text x="{margin}" y="{bottom + 16}">{_utc(first * 60, "%H:%M")}</text>'
        f'<text x="{right}" y="{bottom + 16}" text-anchor="end">'
        f"{_utc(last * 60, '%H:%M')} UTC</text>"
    )
    return (
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="share of requests served by the new apps, per minute">'
        f"<title>share served by the new apps, per minute</title>{axes}{lines}"
        f"{''.join(dots)}</svg>"
    )


# -- formatting ---------------------------------------------------------------------------


def _e(value: object) -> str:
    """Rule "everything that comes from the report is escaped"."""
    return escape(str(value), quote=True)


def _num(text: str) -> str:
    """A figure's cell; `text` is escaped or made here."""
    return f'<td class="num">{text}</td>'


def _percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def _seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _utc(epoch_s: float, form: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime(form)
