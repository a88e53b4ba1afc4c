"""The migration ledger (gateway/migration/ledger.py): its bounds and its merge."""

from __future__ import annotations

from gateway.migration.ledger import (
    HISTORY_MINUTES,
    MAX_KINDS,
    MAX_ROUTES,
    MigrationLedger,
    merge,
)

T0 = 1_800_000_000.0  # a minute boundary (divisible by 60)


def test_requests_count_per_minute_and_side() -> None:
    ledger = MigrationLedger()
    for offset, side in [(0, "new"), (10, "legacy"), (59, "new"), (60, "legacy")]:
        ledger.count_served(side, T0 + offset)
    assert ledger.to_json()["history"] == [[int(T0), 2, 1], [int(T0) + 60, 0, 1]]


def test_the_history_keeps_the_last_hour() -> None:
    ledger = MigrationLedger()
    for minute in range(HISTORY_MINUTES + 30):
        ledger.count_served("new", T0 + minute * 60)
    history = ledger.to_json()["history"]
    assert len(history) == HISTORY_MINUTES
    assert history[-1][0] == int(T0) + (HISTORY_MINUTES + 29) * 60


def test_a_clock_that_steps_back_counts_into_the_newest_minute() -> None:
    ledger = MigrationLedger()
    ledger.count_served("new", T0 + 120)
    ledger.count_served("legacy", T0)
    assert ledger.to_json()["history"] == [[int(T0) + 120, 1, 1]]


def test_mismatches_keep_kinds_counts_and_the_first_sample() -> None:
    ledger = MigrationLedger()
    ledger.note_mismatch("/api", "/users/{id}", "status", {"n": 1})
    ledger.note_mismatch("/api", "/users/{id}", "status", {"n": 2})
    ledger.note_mismatch("/api", "/users/{id}", "body $.price", {"n": 3})
    assert ledger.to_json()["mismatches"] == {
        "/api": {
            "/users/{id}": [
                {"kind": "status", "count": 2, "sample": {"n": 1}},
                {"kind": "body $.price", "count": 1, "sample": {"n": 3}},
            ]
        }
    }


def test_kinds_and_routes_are_bounded() -> None:
    ledger = MigrationLedger()
    for n in range(MAX_KINDS * 3):
        ledger.note_mismatch("/api", "/r", f"body $.f{n}", {})
    for n in range(MAX_ROUTES * 2):
        ledger.note_mismatch("/api", f"/r{n}", "status", {})
    doc = ledger.to_json()["mismatches"]["/api"]
    assert len(doc["/r"]) == MAX_KINDS
    assert len(doc) == MAX_ROUTES


def test_changed_says_whether_the_file_needs_writing() -> None:
    ledger = MigrationLedger()
    assert not ledger.changed
    ledger.count_served("new", T0)
    assert ledger.changed
    ledger.to_json()
    assert not ledger.changed


def test_the_noise_section_comes_from_its_source() -> None:
    ledger = MigrationLedger()
    noise = {"/api": {"/r": {"json_paths": ["$.ts"], "headers": [], "samples": 3}}}
    ledger.attach_noise(lambda: noise)
    assert ledger.to_json()["noise"] == noise


def test_several_noise_sources_are_united() -> None:
    ledger = MigrationLedger()
    ledger.attach_noise(
        lambda: {"/a": {"/r": {"json_paths": ["$.ts"], "headers": [], "samples": 1}}}
    )
    ledger.attach_noise(lambda: {"/b": {"/r": {"json_paths": [], "headers": ["x"], "samples": 2}}})
    assert set(ledger.to_json()["noise"]) == {"/a", "/b"}


def test_merge_sums_minutes_and_kinds_keeps_a_sample_and_unions_noise() -> None:
    one, two = MigrationLedger(), MigrationLedger()
    one.count_served("new", T0)
    two.count_served("legacy", T0)
    two.count_served("legacy", T0 + 60)
    one.note_mismatch("/api", "/r", "status", {"from": "one"})
    two.note_mismatch("/api", "/r", "status", {"from": "two"})
    two.note_mismatch("/api", "/r", "body $.a", {"from": "two"})
    two.note_mismatch("/api", "/r", "body $.a", {"from": "two"})
    two.note_mismatch("/api", "/r", "body $.a", {"from": "two"})
    one.attach_noise(
        lambda: {"/api": {"/r": {"json_paths": ["$.ts"], "headers": ["x-id"], "samples": 2}}}
    )
    two.attach_noise(
        lambda: {"/api": {"/r": {"json_paths": ["$.id"], "headers": [], "samples": 5}}}
    )
    merged = merge([one.to_json(), two.to_json()])
    assert merged["history"] == [[int(T0), 1, 1], [int(T0) + 60, 0, 1]]
    kinds = merged["mismatches"]["/api"]["/r"]
    assert [(k["kind"], k["count"]) for k in kinds] == [("body $.a", 3), ("status", 2)]
    assert kinds[1]["sample"] == {"from": "one"}
    assert merged["noise"]["/api"]["/r"] == {
        "json_paths": ["$.id", "$.ts"],
        "headers": ["x-id"],
        "samples": 7,
    }


def test_merge_keeps_the_bounds() -> None:
    docs = []
    for worker in range(3):
        ledger = MigrationLedger()
        for n in range(MAX_KINDS):
            ledger.note_mismatch("/api", "/r", f"kind {worker} {n}", {})
        for minute in range(HISTORY_MINUTES):
            ledger.count_served("new", T0 + (worker * HISTORY_MINUTES + minute) * 60)
        docs.append(ledger.to_json())
    merged = merge(docs)
    assert len(merged["mismatches"]["/api"]["/r"]) == MAX_KINDS
    assert len(merged["history"]) == HISTORY_MINUTES
