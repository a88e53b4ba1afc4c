"""Learned noise (gateway/migration/noise.py): what two answers of the primary to one
request teach, per route, and the bounds on all of it."""

from __future__ import annotations

import json
from typing import Any

from gateway.migration import noise
from gateway.migration.compare import Answer
from gateway.migration.noise import NoiseBook

JSON = (b"content-type", b"application/json")


def answer(
    document: Any = None,
    *,
    body: bytes | None = None,
    status: int = 200,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    complete: bool = True,
) -> Answer:
    """A primary's answer as the shadow keeps it (with its header fields)."""
    result = Answer(1 << 20, keep_headers=True)
    fields = [JSON, *headers]
    result.take({"type": "http.response.start", "status": status, "headers": fields})
    data = json.dumps(document).encode() if body is None else body
    result.take({"type": "http.response.body", "body": data, "more_body": not complete})
    return result


def test_paths_that_differ_between_two_calls_are_learned_made_general() -> None:
    book = NoiseBook()
    first = {"ts": 1.5, "id": "a1", "price": 10, "items": [{"id": 1, "n": "x"}, {"id": 2}]}
    second = {"ts": 2.5, "id": "b2", "price": 10, "items": [{"id": 7, "n": "x"}, {"id": 8}]}
    book.learn("/users/{id}", answer(first), answer(second))
    ignored = book.ignored("/users/{id}")
    # One path for the whole list of ids, not one per element; the price did not change.
    assert ignored.json_paths == {"$.ts", "$.id", "$.items[*].id"}
    assert book.to_json() == {
        "/users/{id}": {
            "json_paths": ["$.ts", "$.id", "$.items[*].id"],
            "headers": [],
            "samples": 1,
        }
    }
    assert book.ignored("/other").json_paths == frozenset()


def test_header_fields_that_differ_are_learned_but_never_the_uncompared_ones() -> None:
    book = NoiseBook()
    a = answer({}, headers=((b"x-request-id", b"1"), (b"date", b"a"), (b"etag", b'"1"')))
    b = answer({}, headers=((b"x-request-id", b"2"), (b"date", b"b"), (b"etag", b'"1"')))
    book.learn("/", a, b)
    assert book.ignored("/").headers == {"x-request-id"}
    assert book.to_json()["/"]["headers"] == ["x-request-id"]


def test_keys_already_ignored_are_not_learned() -> None:
    book = NoiseBook(frozenset({"served_at"}))
    book.learn("/", answer({"served_at": 1, "ts": 1}), answer({"served_at": 2, "ts": 2}))
    assert book.ignored("/").json_paths == {"$.ts"}


def test_only_a_pair_of_complete_answers_with_one_status_teaches() -> None:
    book = NoiseBook()
    book.learn("/", answer({"a": 1}, status=200), answer({"a": 2}, status=500))
    book.learn("/", answer({"a": 1}), answer({"a": 2}, complete=False))
    failed = answer({"a": 2})
    failed.error = "no complete answer within 30 s"
    book.learn("/", answer({"a": 1}), failed)
    assert book.to_json() == {}
    assert (book.pairs, book.pairs_unusable) == (3, 3)


def test_a_body_that_is_not_json_teaches_nothing_of_its_body() -> None:
    book = NoiseBook()
    book.learn("/", answer(body=b"<p>12:00</p>"), answer(body=b"<p>12:01</p>"))
    assert book.to_json() == {"/": {"json_paths": [], "headers": [], "samples": 1}}


def test_routes_are_bounded_and_the_refused_counted() -> None:
    book = NoiseBook()
    for n in range(noise.MAX_ROUTES + 50):
        assert book.wants_sample(f"/r{n}") is (n < noise.MAX_ROUTES)
        book.learn(f"/r{n}", answer({"ts": 1}), answer({"ts": 2}))
    assert len(book.to_json()) == noise.MAX_ROUTES
    assert book.routes_refused == 50
    assert book.ignored(f"/r{noise.MAX_ROUTES}").json_paths == frozenset()


def test_paths_and_headers_per_route_are_bounded() -> None:
    book = NoiseBook()
    for batch in range(5):  # learned over several pairs, as on a live route
        keys = range(batch * 20, batch * 20 + 20)
        fields_a = tuple((f"x-h{k}".encode(), b"a") for k in keys)
        fields_b = tuple((f"x-h{k}".encode(), b"b") for k in keys)
        first = answer({f"k{k}": 1 for k in keys}, headers=fields_a)
        second = answer({f"k{k}": 2 for k in keys}, headers=fields_b)
        book.learn("/wide", first, second)
    learned = book.to_json()["/wide"]
    assert len(learned["json_paths"]) == noise.MAX_PATHS
    assert len(learned["headers"]) == noise.MAX_HEADERS


def test_a_path_too_long_is_not_learned() -> None:
    book = NoiseBook()
    key = "k" * noise.MAX_PATH_CHARS
    book.learn("/", answer({key: 1, "ts": 1}), answer({key: 2, "ts": 2}))
    assert book.ignored("/").json_paths == {"$.ts"}


def test_a_route_stops_asking_for_samples_once_it_has_enough() -> None:
    book = NoiseBook()
    for n in range(noise.MAX_SAMPLES + 10):
        book.learn("/", answer({"ts": n}), answer({"ts": n + 1}))
    assert book.to_json()["/"]["samples"] == noise.MAX_SAMPLES
    assert not book.wants_sample("/")
    assert book.wants_sample("/new")


def test_what_is_ignored_grows_as_the_route_learns() -> None:
    book = NoiseBook()
    book.learn("/", answer({"ts": 1, "id": 1}), answer({"ts": 2, "id": 1}))
    assert book.ignored("/").json_paths == {"$.ts"}
    book.learn("/", answer({"ts": 1, "id": 1}), answer({"ts": 1, "id": 2}))
    assert book.ignored("/").json_paths == {"$.ts", "$.id"}
