"""shadow_denoise and shadow_share over real sockets (issue 17, points 4 and 5): a Flask
primary and a FastAPI shadow (tests/apps/shadow_noisy.py) whose answers carry a
timestamp, random ids and a random request id next to one real difference."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from support.deadlines import wait_until
from support.servers import Server
from support.shadow_runs import mismatches, settle
from support.ws_clients import DEADLINE_S

from gateway.migration.rules import BUCKETS, bucket
from gateway.migration.shadow import share_key

MOUNTS = """
[server]

[[mount]]
prefix = "/api"
app = "shadow_noisy:legacy"
interface = "wsgi"
threads = 4
shadow = "newapi"
shadow_methods = ["GET", "POST"]
shadow_log = "{log}"
{keys}

[[mount]]
name = "newapi"
app = "shadow_noisy:new"
interface = "asgi"
"""

Serve = Callable[[str], Server]
NOISE = ["$.generated_at", "$.trace", "$.items[*].line_id"]


def start(serve: Serve, log: str = "mismatches.jsonl", **keys: Any) -> Server:
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    return serve(MOUNTS.format(log=log, keys=lines))


def get_orders(server: Server, numbers: range) -> None:
    with httpx.Client(base_url=server.url, timeout=DEADLINE_S) as client:
        for number in numbers:
            answer = client.get(f"/api/orders/{number}")
            assert answer.json()["total_cents"] == 1000 + number  # always the primary's


def test_denoise_ignores_the_timestamp_and_ids_and_reports_the_real_difference(
    serve: Serve,
) -> None:
    server = start(serve, shadow_denoise=True, shadow_denoise_percent=100)
    get_orders(server, range(8))
    settle(server, 8)
    lines = mismatches(server)
    assert sorted(line["request"] for line in lines) == [
        f"GET /api/orders/{number}" for number in (1, 3, 5, 7)
    ]
    for line in lines:
        number = int(line["request"].rsplit("/", 1)[1])
        assert line["diff"] == {
            "json": [
                {
                    "path": "$.total_cents",
                    "primary": str(1000 + number),
                    "shadow": str(1001 + number),
                }
            ]
        }
        assert line["kind"] == "body $.total_cents"
    learned = server.worker.shadows.noise_json()["/api"]
    assert set(learned) == {f"/orders/{number}" for number in range(8)}
    for route in learned.values():
        assert sorted(route["json_paths"]) == sorted(NOISE)
        assert route["headers"] == ["x-request-id"]
        assert route["samples"] == 1


def test_without_denoise_the_timestamp_and_ids_mismatch(serve: Serve) -> None:
    server = start(serve)
    get_orders(server, range(4))
    settle(server, 4)
    lines = mismatches(server)
    assert len(lines) == 4  # every copy: the noise alone makes each one differ
    for line in lines:
        paths = {entry["path"] for entry in line["diff"]["json"]}
        assert {"$.generated_at", "$.trace", "$.items[0].line_id"} <= paths
    assert server.worker.shadows.noise_json() == {}


def test_a_post_reaches_the_primary_once_with_denoise_on(serve: Serve) -> None:
    server = start(serve, shadow_denoise=True, shadow_denoise_percent=100)
    key = uuid.uuid4().hex
    with httpx.Client(base_url=server.url, timeout=DEADLINE_S) as client:
        for _ in range(3):
            assert client.post("/api/orders", params={"key": key}).json() == {"created": True}
        settle(server, 3)
        assert client.get("/api/posts", params={"key": key}).json() == {"count": 3}
    assert mismatches(server) == []


def copied(server: Server, log: str, targets: list[str]) -> set[str]:
    """The requests this server copied, from its log: each copy mismatches (the noise)."""
    expected = sum(1 for target in targets if shared(target, 30))
    with httpx.Client(base_url=server.url, timeout=DEADLINE_S) as client:
        for target in targets:
            assert client.get(target).status_code == 200
    settle(server, expected)
    wait_until(lambda: len(mismatches(server, log)) >= expected, DEADLINE_S)
    return {line["request"] for line in mismatches(server, log)}


def shared(target: str, share: float) -> bool:
    path, _, query = target.partition("?")
    scope = {"method": "GET", "path": path, "query_string": query.encode()}
    return bucket(share_key(scope)) < share * BUCKETS / 100


def test_shadow_share_copies_the_same_requests_on_two_servers(serve: Serve) -> None:
    targets = [f"/api/orders/{n}?page={n % 5}" for n in range(60)]
    first = copied(start(serve, "first.jsonl", shadow_share=30), "first.jsonl", targets)
    second = copied(start(serve, "second.jsonl", shadow_share=30), "second.jsonl", targets)
    assert first == second == {f"GET {target}" for target in targets if shared(target, 30)}
    assert 0 < len(first) < len(targets)
