"""Per-mount metrics (gateway/server/mount_metrics.py): the middleware and the endpoint, called as
ASGI apps on a real event loop, read back through the endpoint's own exposition.

These run prometheus_client in its single-process mode (no PROMETHEUS_MULTIPROC_DIR):
multiprocess mode, chosen once per process, is left to tests/system/test_metrics_workers.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.asgi_seams import App, Receive, Send, answer, body, call, http_scope
from support.metric_samples import PATH, scrape, value

from gateway.adapters import WSGIAdapter
from gateway.asgi import ASGIApp, Scope, mount_label
from gateway.config.loader import parse_config
from gateway.config.server_table import ServerConfig
from gateway.errors import ClientDisconnected, ConfigError, RequestBodyTooLarge, ServiceUnavailable
from gateway.server import metrics, mount_metrics
from gateway.server.mount_metrics import WorkerMetrics

# An app that goes on working after its last body message (a background task).
LINGER_S = 2.5
# An app that takes this long before its answer.
SLOW_S = 0.05
DEADLINE_S = 10.0


def raising(exc: BaseException, started: bool = False) -> App:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise exc

    return app


def requests(samples: dict[Any, float], mount: str, status_class: str) -> float:
    return value(samples, "gateway_requests_total", mount=mount, status_class=status_class)


@pytest.fixture
def worker_metrics() -> WorkerMetrics:
    assert not metrics.multiprocess(), "these tests need single-process mode"
    return WorkerMetrics(PATH)


# -- counting -------------------------------------------------------------------------------


def test_requests_are_counted_by_status_class_per_mount(worker_metrics: WorkerMetrics) -> None:
    for status in (200, 201, 204, 302, 404, 404, 503):
        call(worker_metrics.wrap(answer(status), "/api"))
    call(worker_metrics.wrap(answer(200), "/"))
    samples = scrape(worker_metrics)
    counts = {c: requests(samples, "/api", c) for c in mount_metrics.STATUS_CLASSES}
    assert counts == {"2xx": 3, "3xx": 1, "4xx": 2, "5xx": 1, "none": 0}
    assert requests(samples, "/", "2xx") == 1
    assert value(samples, "gateway_request_duration_seconds_count", mount="/api") == 7


def test_latency_ends_at_the_last_body_message(worker_metrics: WorkerMetrics) -> None:
    call(worker_metrics.wrap(answer(200, after_s=SLOW_S, linger_s=LINGER_S), "/api"))
    samples = scrape(worker_metrics)
    total = value(samples, "gateway_request_duration_seconds_sum", mount="/api")
    # Ended at the body, not when the app returned LINGER_S later; the bounds leave a
    # busy machine room to run the app's sleep late (a bucket per bound, not a clock).
    assert SLOW_S <= total < LINGER_S
    bucket = "gateway_request_duration_seconds_bucket"
    assert value(samples, bucket, mount="/api", le="0.025") == 0
    assert value(samples, bucket, mount="/api", le="1.0") == 1


@pytest.mark.parametrize(
    ("exc", "status_class"),
    [
        (RuntimeError("bug"), "5xx"),  # the server answers 500
        (ServiceUnavailable("WSGI pool full"), "5xx"),  # 503, the error's own status
        (RequestBodyTooLarge("too big"), "4xx"),  # 413
        (ClientDisconnected("gone"), "none"),  # nobody to answer
        (asyncio.CancelledError(), "none"),
    ],
)
def test_an_app_that_raises_before_its_response_counts_the_servers_answer(
    worker_metrics: WorkerMetrics, exc: BaseException, status_class: str
) -> None:
    with pytest.raises(type(exc)):
        call(worker_metrics.wrap(raising(exc), "/api"))
    assert requests(scrape(worker_metrics), "/api", status_class) == 1


def test_an_app_that_raises_mid_response_keeps_the_status_it_sent(
    worker_metrics: WorkerMetrics,
) -> None:
    with pytest.raises(RuntimeError):
        call(worker_metrics.wrap(raising(RuntimeError("bug"), started=True), "/api"))
    samples = scrape(worker_metrics)
    assert requests(samples, "/api", "2xx") == 1
    assert requests(samples, "/api", "5xx") == 0


def test_the_app_sees_every_message_unchanged(worker_metrics: WorkerMetrics) -> None:
    send = call(worker_metrics.wrap(answer(201), "/api"))
    assert send.status == 201
    assert send.body == b"x"


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
def test_other_scopes_pass_through_uncounted(
    worker_metrics: WorkerMetrics, scope_type: str
) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    call(worker_metrics.wrap(app, "/ws"), {"type": scope_type, "path": "/ws"})
    assert seen == [scope_type]
    assert requests(scrape(worker_metrics), "/ws", "none") == 0


def test_routing_counters_start_at_zero_and_count(worker_metrics: WorkerMetrics) -> None:
    worker_metrics.wrap(answer(), "/api")
    names = [name for name, _ in metrics.ROUTING_COUNTERS.values()]
    assert all(value(scrape(worker_metrics), f"{n}_total", mount="/api") == 0 for n in names)
    worker_metrics.count_fallback("/api")
    worker_metrics.count_fallback("/api")
    worker_metrics.count_canary("/api")
    worker_metrics.count_shadow("/api")
    worker_metrics.count_shadow_dropped("/api")
    worker_metrics.count_shadow_mismatch("/api")
    samples = scrape(worker_metrics)
    counted = [value(samples, f"{n}_total", mount="/api") for n in names]
    assert counted == [2, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (299, "2xx"), (301, "3xx"), (418, "4xx"), (599, "5xx"), (0, "none")],
)
def test_status_class(status: int, expected: str) -> None:
    assert mount_metrics.status_class(status) == expected


# -- gauges ---------------------------------------------------------------------------------


def test_in_flight_is_published_at_a_scrape(worker_metrics: WorkerMetrics) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def waiting(scope: Scope, receive: Any, send: Any) -> None:
        entered.set()
        await release.wait()
        await answer()(scope, receive, send)

    async def scenario() -> tuple[float, float]:
        app = worker_metrics.wrap(waiting, "/api")
        endpoint = worker_metrics.endpoint(answer(404))
        request = asyncio.ensure_future(app(http_scope(), Receive(body(b"")), Send()))
        await entered.wait()
        during = await scrape_on_loop(endpoint)
        release.set()
        await request
        return during, await scrape_on_loop(endpoint)

    during, after = asyncio.run(scenario())
    assert (during, after) == (1, 0)


async def scrape_on_loop(endpoint: ASGIApp) -> float:
    send = Send()
    await endpoint(http_scope(PATH), Receive(body(b"")), send)
    for sample in metrics.parse_exposition(send.body.decode()):
        if sample.name == "gateway_requests_in_flight":
            return sample.value
    raise AssertionError("no in-flight gauge")


@pytest.fixture
def blocked_wsgi() -> Iterator[tuple[WSGIAdapter, threading.Event]]:
    """A WSGI mount of 2 threads whose app waits for the event the test sets."""
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        release.wait(DEADLINE_S)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    adapter = WSGIAdapter(app, 2, "legacy", max_queue=10)  # type: ignore[arg-type]
    yield adapter, release
    release.set()
    adapter.close()


def test_wsgi_pool_busy_and_queued(
    worker_metrics: WorkerMetrics, blocked_wsgi: tuple[WSGIAdapter, threading.Event]
) -> None:
    adapter, release = blocked_wsgi
    app = worker_metrics.wrap(adapter, "/", adapter)

    async def scenario() -> dict[str, float]:
        calls = [app(http_scope(), Receive(body(b"")), Send()) for _ in range(3)]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await wait_for(lambda: adapter.active == 3)
        worker_metrics.publish()
        text = worker_metrics.collect().decode()
        release.set()
        await asyncio.gather(*tasks)
        return {s.name: s.value for s in metrics.parse_exposition(text)}

    seen = asyncio.run(scenario())
    assert seen["gateway_wsgi_pool_threads"] == 2
    assert seen["gateway_wsgi_pool_busy"] == 2
    assert seen["gateway_wsgi_pool_queued"] == 1
    assert seen["gateway_requests_in_flight"] == 3


async def wait_for(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_an_asgi_mount_has_no_pool_gauges(worker_metrics: WorkerMetrics) -> None:
    worker_metrics.wrap(answer(), "/api")
    names = {name for name, _ in scrape(worker_metrics)}
    assert "gateway_requests_in_flight" in names
    assert "gateway_wsgi_pool_busy" not in names


# -- the endpoint ---------------------------------------------------------------------------


def test_the_endpoint_answers_the_text_format_uncached(worker_metrics: WorkerMetrics) -> None:
    scope = http_scope(PATH)
    send = call(worker_metrics.endpoint(answer(404)), scope)
    start = send.messages[0]
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/plain; version=")  # the text format
    assert headers[b"cache-control"] == b"no-store"
    assert int(headers[b"content-length"]) == len(send.body)
    assert mount_label(scope) == mount_metrics.METRICS_MOUNT


@pytest.mark.parametrize("path", ["/", "/_gateway", f"{PATH}/x", f"{PATH}x"])
def test_other_paths_go_to_the_app(worker_metrics: WorkerMetrics, path: str) -> None:
    assert call(worker_metrics.endpoint(answer(404)), http_scope(path)).status == 404


def test_other_methods_get_405(worker_metrics: WorkerMetrics) -> None:
    send = call(worker_metrics.endpoint(answer()), http_scope(PATH, method="POST"))
    assert send.status == 405
    assert dict(send.messages[0]["headers"])[b"allow"] == b"GET, HEAD"


def test_scrapes_are_not_counted_as_requests(worker_metrics: WorkerMetrics) -> None:
    app = worker_metrics.endpoint(worker_metrics.wrap(answer(), "/"))
    call(app, http_scope(PATH))
    assert requests(scrape(worker_metrics), "/", "2xx") == 0


# -- settings -------------------------------------------------------------------------------


def test_metrics_are_off_by_default() -> None:
    assert ServerConfig().metrics_path == ""
    assert mount_metrics.worker_metrics(ServerConfig()) is None


def config_text(metrics_path: str) -> str:
    return f'[server]\nmetrics_path = "{metrics_path}"\n[[mount]]\nprefix = "/"\napp = "a:b"\n'


@pytest.mark.parametrize("given", ["_gateway/metrics", "/", "/a b", "/a/../b"])
def test_a_bad_metrics_path_is_a_config_error(given: str) -> None:
    with pytest.raises(ConfigError, match="metrics_path"):
        parse_config(config_text(given), "gateway.toml")


def test_a_metrics_path_is_kept_without_its_trailing_slash() -> None:
    assert parse_config(config_text("/m/"), "gateway.toml").server.metrics_path == "/m"


def test_metrics_path_without_prometheus_client_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "INSTALLED", False)
    server = ServerConfig(metrics_path=PATH)
    with pytest.raises(metrics.MetricsUnavailable, match=r"pip install 'gateway\[metrics\]'"):
        metrics.require(server)
    assert metrics.MetricsUnavailable.exit_status == 1
    metrics.require(ServerConfig())  # off: nothing is needed
