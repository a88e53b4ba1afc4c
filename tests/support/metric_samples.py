"""The metrics endpoint read back as samples, through its own exposition.

Rules:
1. The samples come from the endpoint's answer (a real ASGI call of it), never from
   prometheus_client's registry, so a test sees what a scraper sees.
"""

from __future__ import annotations

from typing import Any

from gateway.server import metrics
from gateway.server.mount_metrics import WorkerMetrics
from support.asgi_seams import answer, call, http_scope

PATH = "/_gateway/metrics"


def scrape(worker_metrics: WorkerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The endpoint's answer, as {(sample name, labels): value}."""
    send = call(worker_metrics.endpoint(answer(404)), http_scope(PATH))
    assert send.status == 200
    text = send.body.decode()
    return {(s.name, frozenset(s.labels.items())): s.value for s in metrics.parse_exposition(text)}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
