"""gateway/http/hpack_codec.py: our header blocks, decoded by hpack's Decoder (another
implementation of RFC 7541) and by an h2 client reading the session's responses."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest

from gateway.http.h2_session import H2Session
from gateway.http.hpack_codec import (
    CACHE_FIELDS,
    TABLE_SIZE_ZERO,
    LiteralEncoder,
    MemoDecoder,
    encode_integer,
    only_indexed,
)

Field = tuple[bytes, bytes]
STATUSES = [100, 103, 200, 201, 204, 206, 301, 304, 400, 404, 418, 500, 503, 599]
CONTENT_LENGTH_5 = (b"content-length", b"5")
FIELD_SETS: list[list[Field]] = [
    [(b":status", b"200")],
    [(b":status", b"200"), (b"content-type", b"text/plain"), CONTENT_LENGTH_5],
    [(b":status", b"404"), (b"x-empty", b""), (b"server", b"")],
    [(b":status", b"302"), (b"location", b"/" + b"a" * 300), (b"x-long-name" * 20, b"v")],
    [(b":status", b"200"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
    [(b":status", b"200"), (b"authorization", b"secret"), (b"cookie", b"c=3")],
    [(b":status", b"500"), (b"content-type", b"text/plain; charset=utf-8")],
    [(b":status", b"200"), (b"x-big", b"z" * 70000), (b"www-authenticate", b"Basic")],
]


def decoded(blocks: list[bytes], table_size: int = 4096) -> list[list[Field]]:
    decoder = hpack.Decoder(max_header_list_size=1 << 20)
    decoder.max_allowed_table_size = table_size
    return [list(decoder.decode(block, raw=True)) for block in blocks]


@pytest.mark.parametrize("fields", FIELD_SETS)
def test_hpack_decodes_what_is_encoded(fields: list[Field]) -> None:
    encoder = LiteralEncoder()
    blocks = [encoder.encode(fields), encoder.encode(fields)]  # the second from the cache
    assert decoded(blocks) == [fields, fields]


def test_every_status_decodes_and_the_static_ones_are_one_byte() -> None:
    encoder = LiteralEncoder()
    encoder.encode([])  # the table size update, out of the way
    for status in STATUSES:
        field = (b":status", b"%d" % status)
        block = encoder.encode([field])
        assert decoded([TABLE_SIZE_ZERO + block]) == [[field]]
        if status in (200, 204, 206, 304, 400, 404, 500):
            assert len(block) == 1  # RFC 7541 §6.1, Appendix A


def test_the_first_block_and_one_after_a_table_size_change_empty_the_table() -> None:
    encoder = LiteralEncoder()
    first, second = encoder.encode([(b":status", b"200")]), encoder.encode([(b":status", b"200")])
    encoder.header_table_size = 0
    third = encoder.encode([(b":status", b"200")])
    assert first.startswith(TABLE_SIZE_ZERO) and not second.startswith(TABLE_SIZE_ZERO)
    assert third.startswith(TABLE_SIZE_ZERO) and encoder.header_table_size == 0
    # A decoder whose table the client set to 0 accepts them: nothing needs its table.
    assert decoded([first, second, third], table_size=0) == [[(b":status", b"200")]] * 3


def test_credentials_are_never_indexed_and_the_rest_is_not_indexed() -> None:
    encoder = LiteralEncoder()
    block = encoder.encode([(b"authorization", b"x"), (b"x-other", b"y"), (b"cookie", b"z")])
    # RFC 7541 §6.2.3: 0001 and the name's index (23, past the 4-bit prefix: 15, 8).
    assert block[1:3] == bytes((0x1F, 8))
    fields = hpack.Decoder().decode(block, raw=True)
    assert [getattr(field, "indexable", True) for field in fields] == [False, True, False]
    marked = hpack.NeverIndexedHeaderTuple(b"x-other", b"y")
    (decoded_marked,) = hpack.Decoder().decode(encoder.encode([marked]), raw=True)
    assert getattr(decoded_marked, "indexable", True) is False


@pytest.mark.parametrize("value", [0, 14, 15, 16, 127, 128, 300, 16383, 2**20])
def test_integers_with_continuation_bytes(value: int) -> None:
    # RFC 7541 §5.1: a 4-bit prefix, then 7 bits a byte, least significant first.
    encoded = encode_integer(value, 4, 0)
    if value < 15:
        assert encoded == bytes((value,))
    else:
        rest = encoded[1:]
        assert encoded[0] == 15 and all(byte & 0x80 for byte in rest[:-1]) and rest[-1] < 0x80
        assert 15 + sum((byte & 0x7F) << (7 * i) for i, byte in enumerate(rest)) == value


def test_the_cache_is_bounded() -> None:
    encoder = LiteralEncoder()
    fields = [(b"x-n", b"%d" % n) for n in range(3 * CACHE_FIELDS)]
    assert decoded([encoder.encode(fields)]) == [fields]
    assert len(encoder._cache) <= CACHE_FIELDS


def test_an_h2_client_reads_the_session_s_responses_after_it_shrinks_its_table() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    session = H2Session(8192)
    client.receive_data(session.data_to_send())
    request = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]
    # No body follows, and the last set is past h2's bound on a header list.
    answered = [fields for fields in FIELD_SETS[:-1] if CONTENT_LENGTH_5 not in fields]
    received: list[list[Field]] = []
    wire = b""
    for stream_id, fields in enumerate(answered):
        client.send_headers(2 * stream_id + 1, request, end_stream=True)
        session.feed(client.data_to_send())
        session.send_head(2 * stream_id + 1, int(fields[0][1]), fields[1:], ())
        session.send_body(2 * stream_id + 1, b"", end=True)
        sent = session.data_to_send()
        wire += sent
        for event in client.receive_data(sent):
            if isinstance(event, h2.events.ResponseReceived):
                assert event.headers is not None
                received.append([(bytes(n), bytes(v)) for n, v in event.headers])
    assert received == answered
    assert b"text/plain; charset=utf-8" in wire  # rule "a field is a literal": no Huffman


def client_blocks() -> tuple[hpack.Encoder, MemoDecoder]:
    return hpack.Encoder(), MemoDecoder(max_header_list_size=1 << 16)


def test_a_repeated_block_of_indexed_fields_is_decoded_once() -> None:
    encoder, decoder = client_blocks()
    head = [(b":method", b"GET"), (b":path", b"/"), (b"user-agent", b"u")]
    first = encoder.encode(head)  # user-agent goes into the table
    again = encoder.encode(head)
    assert only_indexed(again) and not only_indexed(first)
    assert [decoder.decode(block, raw=True) for block in (first, again, again)] == [head] * 3
    assert list(decoder._memo) == [again]


def test_a_block_that_changes_the_table_forgets_what_was_decoded() -> None:
    """RFC 7541 §2.3.3: a new entry takes index 62 and moves the older ones up."""
    decoder = MemoDecoder(max_header_list_size=1 << 16)
    add_x = b"\x40\x01x\x011"  # §6.2.1: literal with incremental indexing, new name
    add_y = b"\x40\x01y\x012"
    newest = bytes((0x80 | 62,))
    assert list(decoder.decode(add_x, raw=True)) == [(b"x", b"1")]
    assert list(decoder.decode(newest, raw=True)) == [(b"x", b"1")]
    assert list(decoder.decode(add_y, raw=True)) == [(b"y", b"2")]
    assert list(decoder.decode(newest, raw=True)) == [(b"y", b"2")]
    assert list(decoder.decode(b"\x20", raw=True)) == []  # §6.3: the table emptied
    with pytest.raises(hpack.HPACKDecodingError):
        decoder.decode(newest, raw=True)


def test_a_remembered_block_is_held_to_a_lowered_header_list_bound() -> None:
    encoder, decoder = client_blocks()
    head = [(b":method", b"GET"), (b"x-long", b"v" * 100)]
    decoder.decode(encoder.encode(head), raw=True)  # x-long goes into the tables
    block = encoder.encode(head)
    assert list(decoder.decode(block, raw=True)) == head
    assert list(decoder.decode(block, raw=True)) == head  # remembered
    decoder.max_header_list_size = 100
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(block, raw=True)


def test_an_index_past_the_tables_is_an_error_every_time() -> None:
    decoder = MemoDecoder(max_header_list_size=1 << 16)
    for _ in range(2):
        with pytest.raises(hpack.HPACKDecodingError):
            decoder.decode(b"\x82\xfe", raw=True)
