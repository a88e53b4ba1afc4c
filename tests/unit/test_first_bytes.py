"""What a cleartext connection's first bytes speak (gateway/http/first_bytes.py), bytes
in, an answer out."""

from __future__ import annotations

import pytest

from gateway.http.first_bytes import PREFACE, FirstBytes, classify_first_bytes


@pytest.mark.parametrize("cut", range(1, len(PREFACE)))
def test_any_start_of_the_preface_waits_and_the_whole_is_http2(cut: int) -> None:
    assert classify_first_bytes(PREFACE[:cut]) is FirstBytes.UNDECIDED
    assert classify_first_bytes(PREFACE + b"\x00\x00\x00\x04") is FirstBytes.HTTP2


@pytest.mark.parametrize(
    "seen",
    [
        b"INVALID CONNECTION PREFACE\r\n\r\n",  # h2spec's case 3.5/2
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"INVITE sip:bob@example.com SIP/2.0\r\n",
    ],
)
def test_a_request_line_naming_another_protocol_is_nobodys(seen: bytes) -> None:
    assert classify_first_bytes(seen) is FirstBytes.OTHER_PROTOCOL


@pytest.mark.parametrize(
    "seen",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",  # HTTP/1.1 answers a broken preface: 505
        b"\r\nGET / HTTP/1.1\r\n",  # an empty line first (RFC 9112 §2.2)
        b"GARBAGE\r\n\r\n",  # not shaped like a request line: a 400
        b"GET /\r\n\r\n",  # HTTP/0.9: a 400
        b"GET / ",  # the first line is not complete yet
        b"GET  / HTTP/1.1\r\n",  # two spaces: malformed HTTP/1.1, a 400
    ],
)
def test_everything_else_is_http1s(seen: bytes) -> None:
    assert classify_first_bytes(seen) is FirstBytes.HTTP1
