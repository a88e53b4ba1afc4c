"""The metrics endpoint read back as samples, through its own exposition.

Rules:
1. The samples come from the endpoint's answer (a real ASGI call of it), never from
   prometheus_client's registry, so a test sees what a scraper sees.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.server import metrics
from gateway.server.mount_metrics import WorkerMetrics
from support.asgi_seams import answer, call, http_scope
from support.deadlines import CLIENT_TIMEOUT_S

PATH = "/_gateway/metrics"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(worker_metrics: WorkerMetrics) -> Samples:
    """The endpoint's answer, as {(sample name, labels): value}."""
    send = call(worker_metrics.endpoint(answer(404)), http_scope(PATH))
    assert send.status == 200
    return samples_of(send.body.decode())


def scrape_url(url: str) -> Samples:
    """A running server's endpoint at `url`, scraped on a connection of its own."""
    response = httpx.get(url, headers={"Connection": "close"}, timeout=CLIENT_TIMEOUT_S)
    assert response.status_code == 200
    return samples_of(response.text)


def samples_of(text: str) -> Samples:
    """An exposition as {(sample name, labels): value}."""
    return {(s.name, frozenset(s.labels.items())): s.value for s in metrics.parse_exposition(text)}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
