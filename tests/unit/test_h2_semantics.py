"""gateway/http/h2_semantics.py: the fields and lengths of HTTP/2 requests and responses,
as plain values (the session's tests, tests/unit/test_h2_session.py, feed it frames)."""

from __future__ import annotations

import pytest

from gateway.errors import AppProtocolError, MethodNotImplemented, RequestHeadersTooLarge
from gateway.http.h2_semantics import (
    HEAD_MEMO_ENTRIES,
    BodyLength,
    MalformedRequest,
    RequestHeadReader,
    ResponseLength,
    read_request_head,
)

REQUEST = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")]


def test_content_length_read_once_from_equal_fields() -> None:
    fields = [*REQUEST, (b"content-length", b"3"), (b"content-length", b"3")]
    assert read_request_head(fields, 8192)[1] == 3


@pytest.mark.parametrize("values", [[b"3", b"4"], [b"x"], [b"-1"]])
def test_a_content_length_that_is_not_one_number_is_malformed(values: list[bytes]) -> None:
    fields = [*REQUEST, *((b"content-length", value) for value in values)]
    with pytest.raises(MalformedRequest):
        read_request_head(fields, 8192)


def test_connect_needs_neither_scheme_nor_path_and_is_not_served() -> None:
    with pytest.raises(MethodNotImplemented):
        read_request_head([(b":method", b"CONNECT"), (b":authority", b"a:443")], 8192)


def test_a_body_is_held_to_its_length() -> None:
    body = BodyLength(3)
    body.add(2)
    with pytest.raises(MalformedRequest):
        body.end()
    with pytest.raises(MalformedRequest):
        body.add(2)


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ([(b"abc", True)], None),
        ([(b"ab", False), (b"c", True)], None),
        ([(b"abcd", True)], "too much"),
        ([(b"ab", False), (b"cd", False)], "too much"),
        ([(b"ab", True)], "too little"),
        ([(b"ab", False), (b"", True)], "too little"),
    ],
)
def test_a_response_is_held_to_its_declared_length(
    parts: list[tuple[bytes, bool]], error: str | None
) -> None:
    length = ResponseLength(200, [(b"Content-Length", b"3")], no_body=False)
    *first, (last, end) = parts
    for body, more in first:
        length.send(len(body), more)
    if error is None:
        length.send(len(last), end)
    else:
        with pytest.raises(AppProtocolError, match=error):
            length.send(len(last), end)


@pytest.mark.parametrize(("status", "no_body"), [(200, True), (204, False), (304, False)])
def test_no_body_follows_a_declared_length_of_head_204_and_304(status: int, no_body: bool) -> None:
    length = ResponseLength(status, [(b"content-length", b"10")], no_body)
    length.send(0, True)  # the length describes a body that is not sent (RFC 9110 §8.6)


MALFORMED_IN_ONE_PASS = {
    "empty name": [*REQUEST, (b"", b"x")],
    "NUL in a pseudo-header's value": [*REQUEST[:2], (b":path", b"/a\x00b"), REQUEST[3]],
    "whitespace around a pseudo-header's value": [*REQUEST[:3], (b":authority", b"a ")],
    "LF in a value": [*REQUEST, (b"x-a", b"1\n2")],
    "uppercase name among notable ones": [*REQUEST, (b"Host", b"a")],
    "TE with a value other than trailers": [*REQUEST, (b"te", b"trailers, gzip")],
    "repeated :authority": [*REQUEST, (b":authority", b"a")],
}


@pytest.mark.parametrize("fields", MALFORMED_IN_ONE_PASS.values(), ids=MALFORMED_IN_ONE_PASS)
def test_every_field_check_holds_in_the_one_pass(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MalformedRequest):
        read_request_head(fields, 8192)


def test_the_fields_read_in_the_one_pass() -> None:
    fields = [*REQUEST, (b"expect", b"100-Continue"), (b"x-a", b""), (b"te", b"trailers")]
    head, length = read_request_head(fields, 8192)
    assert (head.method, head.target, head.expects_continue, length) == (b"POST", b"/", True, None)
    assert head.headers == [(b"host", b"a"), *fields[4:]]


def test_a_remembered_head_is_the_head_read_afresh_with_a_list_of_its_own() -> None:
    reader = RequestHeadReader(8192)
    fields = [*REQUEST, (b"content-length", b"3"), (b"expect", b"100-continue")]
    first, _ = reader.read(fields)
    first.headers.append((b"x-added-by-app", b"1"))  # the scope's list is the app's
    second, second_length = reader.read(list(fields))
    assert second.headers is not first.headers
    expected, expected_length = read_request_head(fields, 8192)
    assert (second, second_length) == (expected, expected_length) == (expected, 3)
    assert second.expects_continue and second.http_version == "2"


def test_a_failing_field_list_fails_every_time() -> None:
    reader = RequestHeadReader(8192)
    fields = [*REQUEST, (b"connection", b"close")]
    for _ in range(2):
        with pytest.raises(MalformedRequest):
            reader.read(fields)


def test_the_reader_holds_to_max_header_bytes_and_stays_bounded() -> None:
    reader = RequestHeadReader(400)
    with pytest.raises(RequestHeadersTooLarge):
        reader.read([*REQUEST, (b"x-big", b"v" * 400)])
    for number in range(3 * HEAD_MEMO_ENTRIES):
        head, _ = reader.read([*REQUEST, (b"x-n", b"%d" % number)])
        assert head.headers[-1] == (b"x-n", b"%d" % number)
    assert len(reader._known) <= HEAD_MEMO_ENTRIES
