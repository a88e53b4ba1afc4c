"""The migration page (gateway/migration/page.py) from fixture reports in the shape of
spec "The report": the route rows and their hooks, escaping, the chart, no URL."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from gateway.migration.page import CHART_MINUTES, REFRESH_S, VERDICTS, render_page

NOW_S = 1_796_551_200  # a whole minute, UTC
HOSTILE = '/x/"><script>alert(1)</script><img src=x onerror=alert(2)>'


def side(requests: int, error_rate: float | None = 0.0) -> dict[str, Any]:
    return {"requests": requests, "error_rate": error_rate, "p50_s": 0.004, "p99_s": 0.12}


def route(mount: str, template: str, verdict: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "mount": mount,
        "route": template,
        "requests": 200,
        "new_share": 0.5,
        "fallback_rate": 0.0,
        "new": side(100),
        "legacy": side(100),
        "shadow_compared": 0,
        "shadow_agreement": None,
        "verdict": verdict,
        "mismatches": [],
        "noise": {"json_paths": [], "headers": [], "samples": 0},
    }
    row.update(extra)
    return row


MISMATCH = {
    "kind": "body $.price",
    "count": 7,
    "sample": {
        "request": "GET /search/items?q=<b>",
        "primary": {"status": 200},
        "shadow": {"status": 200},
        "differs": ["body"],
        "diff": {"json": [{"path": "$.price", "primary": "10", "shadow": '"10.00<i>"'}]},
    },
}


def report(
    routes: list[dict[str, Any]], history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9100/",
        "generated_at": NOW_S,
        "thresholds": {"agreement_percent": 99.0, "min_compared": 100},
        "mounts": [{"mount": "/api", "requests": 400, "share": 0.6, "error_rate": 0.01}],
        "routes": routes,
        "history": history or [],
        "worker_restarts": 0,
    }


def every_verdict() -> list[dict[str, Any]]:
    return [
        route("/api", "/users/{int}", "served by new", legacy=side(0), new_share=1.0),
        route("/api", "/orders", "still falls back", fallback_rate=0.25),
        route("/search", "/items", "disagrees", shadow_compared=150, shadow_agreement=0.8),
        route(
            "/search", "/suggest", "ready to cut over", shadow_compared=500, shadow_agreement=1.0
        ),
        route("/shop", "/cart", "collecting", shadow_compared=3, shadow_agreement=1.0),
    ]


class RouteRows(HTMLParser):
    """The `tr.route` rows' data attributes, as a browser would read them (unescaped)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "tr" and found.get("class") == "route":
            self.rows.append(found)


def rows_of(page: str) -> RouteRows:
    parser = RouteRows()
    parser.feed(page)
    parser.close()
    return parser


def test_each_route_is_a_row_with_its_mount_route_and_verdict() -> None:
    page = render_page(report(every_verdict()))
    rows = rows_of(page).rows
    assert [(r["data-mount"], r["data-route"], r["data-verdict"]) for r in rows] == [
        (r["mount"], r["route"], r["verdict"]) for r in every_verdict()
    ]
    assert {r["data-verdict"] for r in rows} == set(VERDICTS)
    for verdict in VERDICTS:  # each has its own colour class
        assert f'class="verdict v-{verdict.replace(" ", "-")}"' in page


def test_the_figures_of_a_row_are_shown() -> None:
    page = render_page(report(every_verdict()))
    assert "80.0% (150)" in page  # agreement and how many were compared
    assert "25.0%" in page  # the fallback rate
    assert "4.0 ms / 4.0 ms" in page and "120.0 ms / 120.0 ms" in page  # p50, p99


def test_a_hostile_route_template_is_escaped_everywhere() -> None:
    hostile = route("/api", HOSTILE, "collecting", mismatches=[MISMATCH])
    page = render_page(report([hostile]))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    rows = rows_of(page)
    assert rows.rows[0]["data-route"] == HOSTILE  # the attribute reads back whole
    assert "script" not in rows.tags and "img" not in rows.tags
    assert "<b>" not in page and "10.00<i>" not in page  # the sample is escaped too


def test_mismatches_show_a_sample_diff_inside_details_and_the_noise() -> None:
    noisy = route(
        "/search",
        "/items",
        "disagrees",
        mismatches=[MISMATCH],
        noise={"json_paths": ["$.ts", "$.request_id"], "headers": ["x-request-id"], "samples": 12},
    )
    page = render_page(report([noisy]))
    details = re.search(r'<details class="mismatch">(.*?)</details>', page, re.S)
    assert details is not None
    assert "body $.price: 7 times" in details.group(1)
    assert "<del>10</del>" in details.group(1) and "<ins>&quot;10.00&lt;i&gt;&quot;</ins>" in page
    assert "<code>$.ts</code>" in page and "<code>x-request-id</code>" in page
    assert "from 12 double calls" in page


def test_a_byte_window_sample_is_shown_as_both_windows() -> None:
    sample = {"request": "GET /x", "diff": {"offset": 5, "primary": "hello", "shadow": "help!"}}
    page = render_page(
        report([route("/x", "/", "disagrees", mismatches=[{**MISMATCH, "sample": sample}])])
    )
    assert "differ at byte 5" in page and "<del>hello</del>" in page and "<ins>help!</ins>" in page


def test_the_chart_plots_the_new_share_per_minute_with_gaps() -> None:
    history = [
        {"minute": NOW_S - 120, "new": 1, "legacy": 3},  # 25 %
        {"minute": NOW_S - 60, "new": 1, "legacy": 1},  # 50 %
        {"minute": NOW_S - 60 * 90, "new": 5, "legacy": 0},  # older than the hour: left out
        {"minute": NOW_S - 60 * 10, "new": 0, "legacy": 0},  # no traffic: a gap
        {"minute": NOW_S, "new": 4, "legacy": 0},  # 100 %
    ]
    page = render_page(report([], history))
    svg = re.search(r"<svg.*?</svg>", page, re.S)
    assert svg is not None
    titles = re.findall(r"<circle[^>]*><title>([^<]*)</title>", svg.group(0))
    assert [t.split(": ", 1)[1] for t in titles] == [
        "25% new of 4",
        "50% new of 2",
        "100% new of 4",
    ]
    points = re.findall(r'<polyline points="([^"]*)"', svg.group(0))
    assert len(points) == 1 and len(points[0].split()) == 3  # the three last minutes, joined
    ys = [float(p.split(",")[1]) for p in points[0].split()]
    assert ys[0] > ys[1] > ys[2]  # a higher share is higher up
    xs = [float(p.split(",")[0]) for p in points[0].split()]
    assert xs[2] - xs[1] == xs[1] - xs[0] > 0  # a minute apart each
    assert CHART_MINUTES == 60


def test_without_history_or_routes_the_page_says_so() -> None:
    page = render_page(report([]))
    assert "No traffic recorded in the last hour." in page
    assert "No route has been recorded yet." in page
    assert 'id="mounts"' in page  # the mount summary is there all the same


def test_the_page_is_offline_and_refreshes_itself() -> None:
    noisy = route("/a", "/b", "disagrees", mismatches=[MISMATCH])
    history = [{"minute": NOW_S, "new": 1, "legacy": 1}]
    page = render_page(report([*every_verdict(), noisy], history))
    assert not re.search(r"(https?:)?//[a-z0-9]", page.replace("http://127.0.0.1:9100/", ""))
    tags = set(rows_of(page).tags)
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "url(" not in page and "@import" not in page
    assert f'<meta http-equiv="refresh" content="{REFRESH_S}">' in page
