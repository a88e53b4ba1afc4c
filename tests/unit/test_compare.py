"""Comparing two answers (gateway/migration/compare.py): plain data in, a Mismatch or None out."""

from __future__ import annotations

import json

import pytest

from gateway.migration.compare import (
    MAX_PATHS,
    MAX_VALUE_CHARS,
    SCAN_BLOCK_BYTES,
    WINDOW_BYTES,
    Answer,
    compare,
    first_difference,
    json_differences,
)

NONE: frozenset[str] = frozenset()


def answer(
    body: bytes = b"", status: int = 200, content_type: bytes = b"", keep: int = 1 << 20
) -> Answer:
    """An Answer filled the way the shadow fills one: from the app's messages."""
    result = Answer(keep)
    headers = [(b"content-type", content_type)] if content_type else []
    result.take({"type": "http.response.start", "status": status, "headers": headers})
    result.take({"type": "http.response.body", "body": body[:3], "more_body": True})
    result.take({"type": "http.response.body", "body": body[3:]})
    return result


def test_equal_answers_match() -> None:
    assert compare(answer(b"x"), answer(b"x"), NONE) is None
    assert compare(answer(), answer(), NONE) is None  # HEAD: no bodies


def test_each_part_is_named() -> None:
    found = compare(answer(b"a", 200, b"text/plain"), answer(b"b", 500, b"text/html"), NONE)
    assert found is not None and found.parts == ("status", "content-type", "body")


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        (b"application/json", b"Application/JSON", True),
        (b"text/html; charset=utf-8", b"text/html;charset=UTF-8", True),
        (b"text/html", b"text/html; charset=utf-8", False),
        (b"application/json", b"", False),
    ],
)
def test_content_types_compare_as_media_types(left: bytes, right: bytes, same: bool) -> None:
    found = compare(answer(b"x", content_type=left), answer(b"x", content_type=right), NONE)
    assert (found is None) is same


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True),  # key order
        ({"n": 1}, {"n": 1.0}, True),  # the same number
        ({"n": 1}, {"n": True}, False),  # true is not 1
        ({"n": 0}, {"n": False}, False),
        ({"n": None}, {}, False),  # null is not absent
        ([1, 2], [1, 2, 3], False),
        ({"a": {"b": [{"c": 1}]}}, {"a": {"b": [{"c": 2}]}}, False),
        ("text", "text", True),
    ],
)
def test_json_equality(left: object, right: object, same: bool) -> None:
    a, b = json.dumps(left).encode(), json.dumps(right, indent=2).encode()
    assert (json_differences(a, b, NONE) == []) is same


def test_ignored_keys_are_left_out_at_any_depth() -> None:
    a = b'{"id": 1, "at": "t1", "items": [{"id": 2, "at": "t2"}], "x": {"y": {"at": 3}}}'
    b = b'{"id": 1, "at": "t9", "items": [{"id": 2, "at": "t8"}], "x": {"y": {}}}'
    assert json_differences(a, b, frozenset({"at"})) == []
    assert [d["path"] for d in json_differences(a, b, NONE) or []] == [
        "$.at",
        "$.items[0].at",
        "$.x.y.at",
    ]


def test_json_paths_are_bounded_and_in_document_order() -> None:
    a = json.dumps({f"k{n}": n for n in range(50)}).encode()
    b = json.dumps({f"k{n}": -n - 1 for n in range(50)}).encode()
    found = json_differences(a, b, NONE)
    assert found is not None and len(found) == MAX_PATHS
    assert found[0] == {"path": "$.k0", "primary": "0", "shadow": "-1"}
    assert found[-1]["path"] == f"$.k{MAX_PATHS - 1}"


def test_odd_keys_and_long_values_are_shown_safely() -> None:
    a = json.dumps({"a key": "x" * 1000}).encode()
    b = json.dumps({"a key": "y"}).encode()
    [entry] = json_differences(a, b, NONE) or []
    assert entry["path"] == '$["a key"]'
    assert len(entry["primary"]) == MAX_VALUE_CHARS


def test_deep_nesting_is_walked_or_refused_never_a_crash() -> None:
    def nested(depth: int, leaf: bytes) -> bytes:
        return b"[" * depth + leaf + b"]" * depth

    found = json_differences(nested(900, b"1"), nested(900, b"2"), NONE)
    assert found is not None and found[0]["path"] == "$" + "[0]" * 900
    # Deeper than json.loads goes: not compared as JSON (then byte by byte).
    assert json_differences(nested(100_000, b"1"), nested(100_000, b"2"), NONE) is None


def test_bodies_that_are_not_json_show_a_window_around_the_first_difference() -> None:
    prefix = b"a" * 1000
    found = compare(answer(prefix + b"OLD tail"), answer(prefix + b"NEW tail"), NONE)
    assert found is not None
    assert found.diff["offset"] == 1000
    assert found.diff["primary"] == "a" * 32 + "OLD tail"
    assert found.diff["shadow"] == "a" * 32 + "NEW tail"


def test_the_window_is_bounded_and_undecodable_bytes_are_escaped() -> None:
    found = compare(answer(b"\xff" + b"a" * 500), answer(b"\xfe" + b"a" * 500), NONE)
    assert found is not None and found.diff["offset"] == 0
    assert found.diff["primary"].startswith("\\xff")
    assert len(found.diff["primary"]) == len("\\xff") + WINDOW_BYTES - 1


@pytest.mark.parametrize(
    "at", [0, 1, SCAN_BLOCK_BYTES - 1, SCAN_BLOCK_BYTES, 3 * SCAN_BLOCK_BYTES + 7]
)
def test_first_difference_across_blocks(at: int) -> None:
    a = bytearray(b"z" * (4 * SCAN_BLOCK_BYTES))
    b = bytearray(a)
    b[at] = ord("y")
    assert first_difference(a, b) == at
    assert first_difference(a, a[:at]) == at  # one is the other's beginning


def test_bodies_over_what_is_kept_compare_on_their_start_and_length() -> None:
    def kept(body: bytes) -> Answer:
        return answer(body, keep=10)

    # Beyond the kept bytes, only the length counts.
    assert compare(kept(b"0123456789AAAAA"), kept(b"0123456789BBBBB"), NONE) is None
    longer = compare(kept(b"0123456789AAAAA"), kept(b"0123456789AAAA"), NONE)
    assert longer is not None and longer.parts == ("body",)
    assert longer.diff["kept_bytes"] == 10
    cut = kept(b"x" * 20)
    assert (cut.length, len(cut.body), cut.cut) == (20, 10, True)


def test_an_incomplete_answer_summary_shows_its_error() -> None:
    shadow = Answer(100)
    shadow.error = "RuntimeError('boom')"
    assert shadow.summary() == {
        "status": None,
        "content_type": "",
        "bytes": 0,
        "error": "RuntimeError('boom')",
    }
    found = compare(answer(b"ok"), shadow, NONE)
    assert found is not None and found.parts == ("status", "body")
