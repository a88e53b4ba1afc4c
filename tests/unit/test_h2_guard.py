"""gateway/http/h2_guard.py, alone with a clock of its own and through H2Session with a
raw h2 client: floods are cut off at their bound, and honest traffic never meets it."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import pytest
from support.h2_clients import SessionPair, connected_session

from gateway.errors import BadRequest
from gateway.http.h2_guard import (
    PING_BURST,
    PINGS_PER_S,
    RESET_BURST_PER_STREAM,
    SETTINGS_BURST,
    H2Guard,
)
from gateway.http.h2_session import (
    HARD_BOUND_FACTOR,
    MAX_CONCURRENT_STREAMS,
    H2Session,
    StreamHead,
    StreamRefused,
)

MAX_HEADER_BYTES = 8 * 1024
BLOCK_LIMIT = HARD_BOUND_FACTOR * MAX_HEADER_BYTES
RESET_BURST = RESET_BURST_PER_STREAM * MAX_CONCURRENT_STREAMS
REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/")]
PREFACE_AND_SETTINGS = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + hyperframe.frame.SettingsFrame(0).serialize()
)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock | None = None) -> H2Guard:
    checked = H2Guard(BLOCK_LIMIT, MAX_CONCURRENT_STREAMS, clock or Clock())
    assert checked.scan(PREFACE_AND_SETTINGS) is None
    return checked


def pings(count: int, ack: bool = False) -> bytes:
    frame = hyperframe.frame.PingFrame(0, flags=["ACK"] if ack else [])
    frame.opaque_data = b"12345678"
    return frame.serialize() * count


def resets(count: int) -> bytes:
    return b"".join(hyperframe.frame.RstStreamFrame(1 + 2 * n).serialize() for n in range(count))


def header_block(size: int, piece: int = 16 * 1024) -> bytes:
    """HEADERS then CONTINUATION frames, `size` payload bytes in all, never ended."""
    head = hyperframe.frame.HeadersFrame(1, data=b"\x00" * min(piece, size))
    frames = [head.serialize()]
    left = size - piece
    while left > 0:
        frames.append(
            hyperframe.frame.ContinuationFrame(1, data=b"\x00" * min(piece, left)).serialize()
        )
        left -= piece
    return b"".join(frames)


# -- the guard alone ------------------------------------------------------------------


def test_a_burst_of_resets_passes_and_one_more_is_abuse() -> None:
    checked = guard()
    assert checked.scan(resets(RESET_BURST)) is None
    abuse = checked.scan(resets(1))
    assert abuse is not None and "reset" in abuse.reason


def test_resets_at_an_honest_pace_never_meet_the_bound() -> None:
    clock = Clock()
    checked = guard(clock)
    for _ in range(1000):  # one a second below the bound's rate, for 1,000 s
        clock.now += 1.0
        assert checked.scan(resets(9)) is None


def test_the_bucket_drains_with_time() -> None:
    clock = Clock()
    checked = guard(clock)
    assert checked.scan(pings(PING_BURST)) is None
    clock.now += 1.0
    assert checked.scan(pings(int(PINGS_PER_S))) is None
    assert checked.scan(pings(1)) is not None


def test_acks_are_not_counted() -> None:
    checked = guard()
    assert checked.scan(pings(10 * PING_BURST, ack=True)) is None
    settings_ack = hyperframe.frame.SettingsFrame(0, flags=["ACK"]).serialize()
    assert checked.scan(settings_ack * 10 * SETTINGS_BURST) is None


def test_a_settings_flood_is_abuse() -> None:
    checked = guard()  # its preface's SETTINGS counts as the first
    assert (
        checked.scan(hyperframe.frame.SettingsFrame(0).serialize() * (SETTINGS_BURST - 1)) is None
    )
    abuse = checked.scan(hyperframe.frame.SettingsFrame(0).serialize())
    assert abuse is not None and "SETTINGS" in abuse.reason


def test_a_header_block_is_cut_at_the_frame_head_that_crosses_the_bound() -> None:
    checked = guard()
    flood = header_block(10 * BLOCK_LIMIT)
    # Fed up to the head of the frame that crosses the bound, and no further.
    frame = 9 + 16 * 1024
    crossing = ((BLOCK_LIMIT + frame - 1) // frame - 1) * frame
    assert checked.scan(flood[:crossing]) is None
    abuse = checked.scan(flood[crossing : crossing + 9])
    assert abuse is not None and str(BLOCK_LIMIT) in abuse.reason


def test_a_header_block_that_ends_in_time_passes_and_the_next_one_counts_anew() -> None:
    checked = guard()
    head = hyperframe.frame.HeadersFrame(1, data=b"\x00" * 16_000)
    end = hyperframe.frame.ContinuationFrame(1, data=b"\x00" * 15_000, flags=["END_HEADERS"])
    for _ in range(10):
        assert checked.scan(head.serialize() + end.serialize()) is None


@pytest.mark.parametrize("piece", [1, 2, 7, 9, 10, 4096])
def test_frames_split_anywhere_are_counted_the_same(piece: int) -> None:
    checked = H2Guard(BLOCK_LIMIT, MAX_CONCURRENT_STREAMS, Clock())
    block = hyperframe.frame.HeadersFrame(1, data=b"\x00" * 1000, flags=["END_HEADERS"])
    wire = PREFACE_AND_SETTINGS + resets(RESET_BURST) + block.serialize() + resets(1)
    found = [checked.scan(wire[n : n + piece]) for n in range(0, len(wire), piece)]
    abuses = [abuse for abuse in found if abuse is not None]
    assert abuses and "reset" in abuses[0].reason
    # At the last byte of the last frame's head, before its 4-byte payload.
    assert found.index(abuses[0]) == (len(wire) - 4 - 1) // piece


def test_refused_streams_count_with_the_resets() -> None:
    checked = guard()
    assert checked.scan(resets(RESET_BURST - 1)) is None
    checked.stream_refused()
    assert checked.scan(b"") is None
    checked.stream_refused()
    abuse = checked.scan(b"")  # found at the next read, whatever it holds
    assert abuse is not None and "refused" in abuse.reason


# -- through the session, with a raw h2 client ----------------------------------------


def connected() -> SessionPair:
    return connected_session(MAX_HEADER_BYTES)


def calmed_down(client: h2.connection.H2Connection, session: H2Session, data: bytes) -> bool:
    """Whether `data` ends the connection with GOAWAY ENHANCE_YOUR_CALM."""
    try:
        session.feed(data)
    except BadRequest:
        events = client.receive_data(session.data_to_send())
        ended = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        return [e.error_code for e in ended] == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]
    return False


def open_and_reset(client: h2.connection.H2Connection, first: int, count: int) -> bytes:
    """The Rapid Reset pattern: a stream, then its reset, `count` times."""
    for n in range(first, first + count):
        client.send_headers(1 + 2 * n, REQUEST, end_stream=True)
        client.reset_stream(1 + 2 * n)
    return client.data_to_send()


def test_rapid_reset_ends_the_connection_with_enhance_your_calm() -> None:
    client, session = connected()
    heads = session.feed(open_and_reset(client, 0, RESET_BURST))  # as many as a burst
    assert sum(isinstance(event, StreamHead) for event in heads) == RESET_BURST  # served
    # The bucket drains by RESETS_PER_S meanwhile, a few at most in a test's time.
    assert calmed_down(client, session, open_and_reset(client, RESET_BURST, 20))
    assert calmed_down(client, session, b"")  # and it stays ended


def test_a_ping_flood_ends_the_connection_with_enhance_your_calm() -> None:
    client, session = connected()
    for n in range(PING_BURST):
        client.ping(b"%08d" % n)
    session.feed(client.data_to_send())
    client.ping(b"one more")
    assert calmed_down(client, session, client.data_to_send())


def test_a_continuation_flood_is_cut_off_long_before_h2s_own_bound() -> None:
    client, session = connected()
    flood = header_block(64 * 16 * 1024)  # h2's CONTINUATION_BACKLOG, of full frames
    fed = 0
    with pytest.raises(BadRequest, match="header block"):
        for fed in range(0, len(flood), 1024):
            session.feed(flood[fed : fed + 1024])
    assert fed < BLOCK_LIMIT + 16 * 1024  # the crossing frame's head ended it
    events = client.receive_data(session.data_to_send())
    assert isinstance(events[-1], h2.events.ConnectionTerminated)
    assert events[-1].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_a_large_honest_header_block_gets_its_431_and_the_connection_goes_on() -> None:
    client, session = connected()
    # Over max_header_bytes, under the hard bound: h2 splits it into CONTINUATIONs.
    fields = [*REQUEST, *((f"x-{n}", "v" * 1000) for n in range(12))]
    client.send_headers(1, fields, end_stream=True)
    refused = session.feed(client.data_to_send())[0]
    assert isinstance(refused, StreamRefused) and refused.error.status == 431
    client.send_headers(3, REQUEST, end_stream=True)
    assert session.feed(client.data_to_send())
