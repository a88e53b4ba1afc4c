"""`gateway status` (gateway/status.py): the report, from a canned metrics text.

The text is what a server with three mounts would answer: a new ASGI app on /api with a
fallback and a shadow, the legacy WSGI app on /, and a static mount that saw nothing.
"""

from __future__ import annotations

import json
import math

import pytest

from gateway.config.loader import parse_config
from gateway.status import (
    StatusUnavailable,
    build_report,
    metrics_url,
    quantile,
    render_json,
    render_table,
)

URL = "http://127.0.0.1:8000/_gateway/metrics"
ORDER = ["/api", "/", "/static"]
EXPOSITION = """\
# HELP gateway_requests_total requests by status class
# TYPE gateway_requests_total counter
gateway_requests_total{mount="/api",status_class="2xx"} 850.0
gateway_requests_total{mount="/api",status_class="4xx"} 100.0
gateway_requests_total{mount="/api",status_class="5xx"} 50.0
gateway_requests_total{mount="/",status_class="2xx"} 2990.0
gateway_requests_total{mount="/",status_class="none"} 10.0
# HELP gateway_request_duration_seconds seconds from the app's call to its last body
# TYPE gateway_request_duration_seconds histogram
gateway_request_duration_seconds_bucket{le="0.01",mount="/api"} 400.0
gateway_request_duration_seconds_bucket{le="0.1",mount="/api"} 980.0
gateway_request_duration_seconds_bucket{le="+Inf",mount="/api"} 1000.0
gateway_request_duration_seconds_count{mount="/api"} 1000.0
gateway_request_duration_seconds_sum{mount="/api"} 30.0
gateway_request_duration_seconds_bucket{le="0.1",mount="/"} 0.0
gateway_request_duration_seconds_bucket{le="1.0",mount="/"} 3000.0
gateway_request_duration_seconds_bucket{le="+Inf",mount="/"} 3000.0
gateway_request_duration_seconds_count{mount="/"} 3000.0
gateway_request_duration_seconds_sum{mount="/"} 1500.0
# HELP gateway_wsgi_pool_threads pool size
# TYPE gateway_wsgi_pool_threads gauge
gateway_wsgi_pool_threads{mount="/"} 32.0
# HELP gateway_wsgi_pool_busy threads on a request
# TYPE gateway_wsgi_pool_busy gauge
gateway_wsgi_pool_busy{mount="/"} 8.0
# HELP gateway_wsgi_pool_queued requests waiting
# TYPE gateway_wsgi_pool_queued gauge
gateway_wsgi_pool_queued{mount="/"} 3.0
# HELP gateway_fallbacks_total responses replayed to the fallback mount
# TYPE gateway_fallbacks_total counter
gateway_fallbacks_total{mount="/api"} 40.0
gateway_fallbacks_total{mount="/"} 0.0
# HELP gateway_shadow_requests_total request copies sent to this mount's shadow
# TYPE gateway_shadow_requests_total counter
gateway_shadow_requests_total{mount="/api"} 200.0
# HELP gateway_shadow_mismatches_total shadow responses unlike the primary's
# TYPE gateway_shadow_mismatches_total counter
gateway_shadow_mismatches_total{mount="/api"} 5.0
# HELP gateway_worker_restarts_total workers replaced
# TYPE gateway_worker_restarts_total counter
gateway_worker_restarts_total{reason="exited"} 1.0
gateway_worker_restarts_total{reason="max_requests"} 2.0
"""


@pytest.fixture
def report() -> dict[str, object]:
    report: dict[str, object] = json.loads(render_json(build_report(URL, EXPOSITION, ORDER)))
    return report


def mounts(report: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = report["mounts"]
    assert isinstance(rows, list)
    return {row["mount"]: row for row in rows}


def test_mounts_come_in_the_files_order(report: dict[str, object]) -> None:
    assert list(mounts(report)) == ORDER


def test_traffic_share_legacy_against_new(report: dict[str, object]) -> None:
    rows = mounts(report)
    assert [rows[m]["requests"] for m in ORDER] == [1000, 3000, 0]
    assert [rows[m]["share"] for m in ORDER] == [0.25, 0.75, 0.0]


def test_error_rate_is_the_5xx_share(report: dict[str, object]) -> None:
    rows = mounts(report)
    assert rows["/api"]["error_rate"] == 0.05
    assert rows["/"]["error_rate"] == 0.0
    assert rows["/static"]["error_rate"] is None  # no requests: no rate


def test_p50_and_p99_from_the_buckets(report: dict[str, object]) -> None:
    api, legacy = mounts(report)["/api"], mounts(report)["/"]
    # /api: the 500th of 1000 is the 100th of the 580 in (0.01, 0.1]; the 990th is past
    # the last finite bucket, whose bound is the answer.
    assert api["p50_s"] == pytest.approx(0.01 + 0.09 * 100 / 580)
    assert api["p99_s"] == 0.1
    assert legacy["p50_s"] == pytest.approx(0.55)
    assert legacy["p99_s"] == pytest.approx(0.991)
    assert mounts(report)["/static"]["p50_s"] is None


def test_pool_saturation_for_wsgi_mounts_only(report: dict[str, object]) -> None:
    rows = mounts(report)
    assert rows["/"]["pool"] == {"threads": 32, "busy": 8, "queued": 3, "saturation": 0.25}
    assert rows["/api"]["pool"] is None


def test_fallback_and_shadow_mismatch_rates(report: dict[str, object]) -> None:
    api = mounts(report)["/api"]
    assert api["fallback_rate"] == 0.04
    assert api["shadow_requests"] == 200
    assert api["shadow_mismatch_rate"] == 0.025
    assert mounts(report)["/"]["shadow_mismatch_rate"] is None  # no shadow copies


def test_worker_restarts_are_summed_over_reasons(report: dict[str, object]) -> None:
    assert report["worker_restarts"] == 3
    assert report["url"] == URL


def test_a_mount_the_file_no_longer_has_comes_last() -> None:
    report = build_report(URL, EXPOSITION, ["/"])
    assert [m.mount for m in report.mounts] == ["/", "/api"]


def test_the_table() -> None:
    lines = render_table(build_report(URL, EXPOSITION, ORDER)).splitlines()
    assert lines[0] == f"metrics:  {URL}"
    assert lines[1].split() == [
        "MOUNT", "REQUESTS", "SHARE", "5XX", "P50", "P99", "POOL", "FALLBACK", "MISMATCH"
    ]  # fmt: skip
    assert lines[2].split() == [
        "/api", "1000", "25.0%", "5.0%", "25.5ms", "100.0ms", "-", "4.0%", "2.5%"
    ]  # fmt: skip
    assert lines[3].split() == [
        "/", "3000", "75.0%", "0.0%", "550.0ms", "991.0ms", "25.0%", "8/32", "+3", "queued",
        "0.0%", "-",
    ]  # fmt: skip
    assert lines[4].split() == ["/static", "0", "0.0%", "-", "-", "-", "-", "-", "-"]
    assert lines[5] == "worker restarts: 3"


def test_an_answer_that_is_not_metrics_is_unavailable() -> None:
    with pytest.raises(StatusUnavailable, match="did not answer Prometheus metrics"):
        build_report(URL, "<html>Not Found</html>")


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ([], 0.5, None),
        ([(0.1, 0.0), (math.inf, 0.0)], 0.5, None),  # nothing counted
        ([(0.1, 10.0), (math.inf, 10.0)], 0.5, 0.05),  # linear from 0 in the first
        ([(math.inf, 4.0), (0.1, 2.0), (1.0, 4.0)], 0.75, 0.55),  # any order
        ([(0.1, 0.0), (math.inf, 5.0)], 0.5, 0.1),  # past the last finite bound
    ],
)
def test_quantile(buckets: list[tuple[float, float]], q: float, expected: float | None) -> None:
    assert quantile(q, buckets) == (None if expected is None else pytest.approx(expected))


def config(server: str) -> str:
    return f'[server]\n{server}\n[[mount]]\nprefix = "/"\napp = "a:b"\n'


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000/m"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080/m"),  # every interface: over loopback
        ("[::]:8080", "http://[::1]:8080/m"),
        ("[::1]:9000", "http://[::1]:9000/m"),
        ("unix:/run/gw.sock", "http+unix://%2Frun%2Fgw.sock/m"),
    ],
)
def test_the_url_is_the_first_bind_and_the_metrics_path(bind: str, url: str) -> None:
    text = config(f'bind = ["{bind}", "10.0.0.1:80"]\nmetrics_path = "/m"')
    assert metrics_url(parse_config(text, "gateway.toml")) == url


def test_tls_makes_it_https() -> None:
    text = config('bind = ["127.0.0.1:8443"]\nmetrics_path = "/m"\ncertfile = "cert.pem"')
    assert metrics_url(parse_config(text, "gateway.toml")) == "https://127.0.0.1:8443/m"


def test_metrics_off_is_unavailable() -> None:
    with pytest.raises(StatusUnavailable, match=r"metrics are off in gateway\.toml"):
        metrics_url(parse_config(config(""), "gateway.toml"))


def test_an_inherited_socket_needs_a_url() -> None:
    text = config('bind = ["fd://3"]\nmetrics_path = "/m"')
    with pytest.raises(StatusUnavailable, match="pass --url"):
        metrics_url(parse_config(text, "gateway.toml"))
