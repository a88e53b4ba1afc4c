"""shadow_share and shadow_denoise (gateway/migration/shadow.py, issue 17 points 4 and 5)
through the real Router with small real ASGI apps, the rule built from a MountConfig by
Shadows as the worker builds it. The copies run as real tasks on the test's loop, which
waits for them with ShadowPool.join (a deadline, never a sleep)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from support.scripted_requests import Client, body, http_scope

from gateway.asgi import Interface, Receive, Scope, Send
from gateway.config.mount_table import MountConfig
from gateway.migration import noise
from gateway.migration.shadow import BODY_BYTES, ShadowRule
from gateway.migration.shadows import Shadows
from gateway.routing.router import Mount, Router

DEADLINE_S = 10.0


class Noisy:
    """Answers JSON with a timestamp and an id that change on every call, a request id
    header that does too, and a price of its own; counts its calls by method."""

    def __init__(self, price: int, first_id: int = 0) -> None:
        self.price = price
        self.calls: dict[str, int] = {}
        self.paths: list[str] = []
        self._serial = itertools.count(first_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        self.calls[method] = self.calls.get(method, 0) + 1
        self.paths.append(scope["path"])
        while (await receive()).get("more_body"):
            pass
        n = next(self._serial)
        document = {"ts": f"2026-12-06T10:00:{n:02d}", "id": n, "price": self.price}
        headers = [(b"content-type", b"application/json"), (b"x-request-id", str(n).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(document).encode()})


class Ledger:
    """The ledger's one method, recorded (H1's MigrationLedger is the real one)."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, str, dict[str, Any]]] = []

    def note_mismatch(self, mount: str, route: str, kind: str, sample: dict[str, Any]) -> None:
        self.notes.append((mount, route, kind, sample))


class RouteCounts:
    """The per-route counter (H1's WorkerMetrics counts it into Prometheus)."""

    def __init__(self) -> None:
        self.counted: list[tuple[str, str, bool]] = []

    def count_fallback(self, mount: str) -> None: ...
    def count_canary(self, mount: str) -> None: ...
    def count_shadow(self, mount: str) -> None: ...
    def count_shadow_dropped(self, mount: str) -> None: ...
    def count_shadow_mismatch(self, mount: str) -> None: ...

    def count_route_shadow(self, mount: str, route: str, mismatch: bool) -> None:
        self.counted.append((mount, route, mismatch))


class Setup:
    """/api (primary) shadowing to "newapi" (copy), its rule made by Shadows."""

    def __init__(self, tmp_path: Path, primary: Any, copy: Any, **keys: Any) -> None:
        self.log_path = tmp_path / "mismatches.jsonl"
        self.shadows = Shadows()
        self.ledger = Ledger()
        self.metrics = RouteCounts()
        config = MountConfig(
            prefix="/api", app="m:a", shadow="newapi", shadow_log=str(self.log_path), **keys
        )
        self.rule: ShadowRule = self.shadows.rule(
            config, ("gateway.toml", "mount #1"), self.metrics, ledger=self.ledger
        )
        self.router = Router(
            [
                Mount("/api", primary, 10 * BODY_BYTES, Interface.ASGI, rules=[self.rule]),
                Mount("", copy, 10 * BODY_BYTES, Interface.ASGI, name="newapi"),
            ]
        )

    async def request(self, path: str, method: str = "GET", query: bytes = b"") -> Client:
        scope = {**http_scope(path), "method": method, "query_string": query}
        client = Client(body(b"x" if method == "POST" else b""))
        await asyncio.wait_for(self.router(scope, client.receive, client.send), DEADLINE_S)
        return client

    async def settle(self) -> None:
        assert await self.rule.pool.join(DEADLINE_S), "shadow copies still running"

    def lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


def copied_paths(tmp_path: Path, share: float, targets: list[str]) -> list[str]:
    """The targets a fresh server with this shadow_share copies, in order."""
    copy = Noisy(10)
    setup = Setup(tmp_path, Noisy(10), copy, shadow_share=share)

    async def test() -> None:
        for target in targets:
            path, _, query = target.partition("?")
            await setup.request(path, query=query.encode())
            await setup.settle()

    asyncio.run(test())
    asyncio.run(setup.shadows.close())
    return copy.paths


def test_shadow_share_copies_the_same_requests_in_every_run(tmp_path: Path) -> None:
    targets = [f"/api/items/{n}?page={n % 3}" for n in range(120)]
    first = copied_paths(tmp_path, 25, targets)
    second = copied_paths(tmp_path, 25, targets)
    assert first == second  # reproducible: a new Shadows, a new router, the same set
    assert 10 < len(first) < 50  # a quarter of 120, give or take the hash's spread
    assert copied_paths(tmp_path, 0, targets) == []
    assert len(copied_paths(tmp_path, 100, targets)) == len(targets)


def test_shadow_share_hashes_the_query_too(tmp_path: Path) -> None:
    targets = [f"/api/search?q={n}" for n in range(100)]
    assert 0 < len(copied_paths(tmp_path, 50, targets)) < len(targets)


def run_noisy(tmp_path: Path, requests: int, **keys: Any) -> tuple[Setup, Noisy, Noisy]:
    primary, copy = Noisy(10), Noisy(12, first_id=1000)
    setup = Setup(tmp_path, primary, copy, **keys)

    async def test() -> None:
        for n in range(requests):
            await setup.request(f"/api/items/{n % 4}")
            await setup.settle()

    asyncio.run(test())
    asyncio.run(setup.shadows.close())
    return setup, primary, copy


def test_denoise_learns_the_noise_and_still_reports_the_real_difference(tmp_path: Path) -> None:
    setup, primary, copy = run_noisy(tmp_path, 6, shadow_denoise=True, shadow_denoise_percent=100)
    assert primary.calls == {"GET": 12} and copy.calls == {"GET": 6}  # each one twice
    learned = setup.shadows.noise_json()["/api"]
    assert learned["/items/0"] == {
        "json_paths": ["$.ts", "$.id"],
        "headers": ["x-request-id"],
        "samples": 2,
    }
    for line in setup.lines():  # the noise is never a finding; the price always is
        assert [entry["path"] for entry in line["diff"]["json"]] == ["$.price"]
        assert "headers" not in line["diff"]
        assert line["kind"] == "body $.price"
    assert len(setup.lines()) == 6
    assert {note[:3] for note in setup.ledger.notes} == {
        ("/api", f"/items/{n}", "body $.price") for n in range(4)
    }
    assert setup.metrics.counted[0] == ("/api", "/items/0", True)
    assert len(setup.metrics.counted) == 6


def test_without_denoise_the_noise_is_reported(tmp_path: Path) -> None:
    setup, primary, _ = run_noisy(tmp_path, 3)
    assert primary.calls == {"GET": 3}
    assert setup.shadows.noise_json() == {}
    paths = [[entry["path"] for entry in line["diff"]["json"]] for line in setup.lines()]
    assert paths == [["$.ts", "$.id", "$.price"]] * 3


def test_a_write_never_reaches_the_primary_twice(tmp_path: Path) -> None:
    primary, copy = Noisy(10), Noisy(10)
    setup = Setup(
        tmp_path,
        primary,
        copy,
        shadow_methods=("GET", "POST", "PUT", "DELETE"),
        shadow_denoise=True,
        shadow_denoise_percent=100,
    )

    async def test() -> None:
        for method in ("POST", "PUT", "DELETE", "POST"):
            await setup.request("/api/orders", method)
            await setup.settle()

    asyncio.run(test())
    asyncio.run(setup.shadows.close())
    assert primary.calls == {"POST": 2, "PUT": 1, "DELETE": 1}  # once each, as the client sent
    assert copy.calls == {"POST": 2, "PUT": 1, "DELETE": 1}
    assert setup.shadows.noise_json() == {"/api": {}}


def test_shadow_denoise_percent_draws_the_second_calls(tmp_path: Path) -> None:
    _, primary, _ = run_noisy(tmp_path, 4, shadow_denoise=True, shadow_denoise_percent=0)
    assert primary.calls == {"GET": 4}


def test_routes_past_the_books_bound_are_not_sent_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(noise, "MAX_ROUTES", 5)  # the bound, small enough to pass quickly
    primary, copy = Noisy(10), Noisy(10)
    setup = Setup(tmp_path, primary, copy, shadow_denoise=True, shadow_denoise_percent=100)

    async def test() -> None:
        for n in range(12):
            await setup.request(f"/api/distinct/{n}")
            await setup.settle()

    asyncio.run(test())
    asyncio.run(setup.shadows.close())
    assert len(setup.shadows.noise_json()["/api"]) == 5
    assert primary.calls == {"GET": 12 + 5}  # second calls for the routes it could learn
