"""What issue 17 added to the comparison (gateway/migration/compare.py): header fields
when asked, general JSON paths left out, and a kind per mismatch."""

from __future__ import annotations

import pytest

from gateway.migration.compare import (
    MAX_HEADER_FIELDS,
    MAX_HEADER_VALUE_BYTES,
    MAX_KIND_CHARS,
    Answer,
    compare,
    general_path,
)

NONE: frozenset[str] = frozenset()
JSON = (b"content-type", b"application/json")


def answer(
    body: bytes = b"{}",
    status: int | None = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    error: str = "",
) -> Answer:
    """An Answer that keeps its header fields, filled as the shadow fills one."""
    result = Answer(1 << 20, keep_headers=True)
    fields = [JSON] if headers is None else headers
    result.take({"type": "http.response.start", "status": status, "headers": fields})
    result.take({"type": "http.response.body", "body": body})
    result.error = error
    return result


def test_headers_are_compared_only_when_asked() -> None:
    a = answer(headers=[JSON, (b"x-version", b"1")])
    b = answer(headers=[JSON, (b"x-version", b"2")])
    assert compare(a, b, NONE) is None  # as before issue 17
    found = compare(a, b, NONE, headers=frozenset())
    assert found is not None
    assert found.parts == ("headers",)
    assert found.diff == {"headers": [{"name": "x-version", "primary": "1", "shadow": "2"}]}
    assert found.kind == "header x-version"


def test_framing_and_per_response_fields_and_ignored_names_never_count() -> None:
    a = answer(
        headers=[
            JSON,
            (b"Date", b"Mon, 01 Jan 2026 00:00:00 GMT"),
            (b"content-length", b"2"),
            (b"server", b"flask"),
            (b"x-request-id", b"a1"),
        ]
    )
    b = answer(headers=[JSON, (b"transfer-encoding", b"chunked"), (b"x-request-id", b"b2")])
    assert compare(a, b, NONE, headers=frozenset({"x-request-id"})) is None
    found = compare(a, b, NONE, headers=frozenset())
    assert found is not None and found.diff["headers"] == [
        {"name": "x-request-id", "primary": "a1", "shadow": "b2"}
    ]


def test_a_field_on_one_side_only_and_repeated_fields_differ() -> None:
    cookies = [JSON, (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    found = compare(answer(headers=cookies), answer(headers=[JSON]), NONE, headers=NONE)
    assert found is not None
    assert found.diff["headers"] == [{"name": "set-cookie", "primary": "a=1, b=2"}]


def test_an_answer_keeps_a_bounded_number_of_fields_each_cut() -> None:
    many = [(f"x-{n}".encode(), b"v" * (2 * MAX_HEADER_VALUE_BYTES)) for n in range(200)]
    kept = answer(headers=many)
    assert len(kept.headers) == MAX_HEADER_FIELDS
    assert {len(value) for _, value in kept.headers} == {MAX_HEADER_VALUE_BYTES}
    assert Answer(10).headers == []  # not asked: nothing kept


@pytest.mark.parametrize(
    ("path", "general"),
    [
        ("$", "$"),
        ("$.items[3].id", "$.items[*].id"),
        ("$[0][12]", "$[*][*]"),
        ('$["2024"].total', '$["2024"].total'),  # a key of digits is not an index
    ],
)
def test_general_paths_stand_for_every_index(path: str, general: str) -> None:
    assert general_path(path) == general


def test_learned_general_paths_are_left_out_with_all_below_them() -> None:
    a = answer(b'{"ts": 1, "items": [{"id": "x", "price": 1}, {"id": "y", "price": 2}]}')
    b = answer(b'{"ts": 2, "items": [{"id": "p", "price": 1}, {"id": "q", "price": 3}]}')
    paths = frozenset({"$.ts", "$.items[*].id"})
    found = compare(a, b, NONE, paths)
    assert found is not None
    assert found.diff == {"json": [{"path": "$.items[1].price", "primary": "2", "shadow": "3"}]}
    assert found.kind == "body $.items[*].price"
    assert compare(a, b, NONE, frozenset({"$.ts", "$.items[*]"})) is None
    assert compare(answer(b"[1]"), answer(b"[2]"), NONE, frozenset({"$"})) is None


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        (answer(status=200), answer(status=500), "status"),
        (answer(headers=[JSON]), answer(headers=[(b"content-type", b"text/html")]), "content-type"),
        (answer(b"<p>a</p>"), answer(b"<p>b</p>"), "body"),
        (answer(b'{"price": 1}'), answer(b'{"price": 2}'), "body $.price"),
        (answer(status=200), answer(status=None, error="boom"), "error, status"),
    ],
)
def test_each_mismatch_has_a_short_kind(a: Answer, b: Answer, kind: str) -> None:
    found = compare(a, b, NONE)
    assert found is not None and found.kind == kind


def test_a_kind_is_bounded() -> None:
    key = "k" * 500
    found = compare(answer(b'{"%s": 1}' % key.encode()), answer(b"{}"), NONE)
    assert found is not None and len(found.kind) == MAX_KIND_CHARS
    assert found.kind.startswith("body $.kkk")
