"""HPACK (RFC 7541) for an h2 connection, sans I/O: the encoder of our responses' header
blocks, which h2 calls as its `encoder` (`encode`, `header_table_size`), and the
decoder of the requests' blocks, as its `decoder`. The encoder trades a few bytes on
the wire for the CPU that hpack's indexing encoder spends on every field; the decoder
is hpack's, which skips the blocks it has decoded before where that is exact.

Rules:
1. Nothing is ever added to the dynamic table, so nothing we send depends on the
   client's. Every block that is the first, or the first after the client changed
   SETTINGS_HEADER_TABLE_SIZE, opens with a dynamic table size update to 0
   (RFC 7541 §6.3, §4.2), which every client must accept whatever its setting: its
   table is then empty, and stays so.
2. A field is a literal without indexing (RFC 7541 §6.2.2) whose name is the static
   table's index where the static table has the name (Appendix A), else a literal
   name; strings are raw, never Huffman (§5.2). :status is fully indexed (§6.1) for the
   seven statuses of the static table.
3. Fields that carry credentials (authorization, proxy-authorization, cookie,
   set-cookie) are literals never indexed (RFC 7541 §6.2.3, §7.1.3), so no intermediary
   puts them in a table either; and so is any field h2 hands over marked never-indexed.
4. A field's encoding depends on nothing but the field (rule "nothing is ever added"),
   so it is cached: a bounded dict, cleared when full, since apps repeat the same few
   fields and a field seen once (a date, a length) costs one encoding.
5. A block of indexed fields only (RFC 7541 §6.1: all its fields in a table already,
   as a client's repeated request heads are) changes no table, so its fields depend on
   the block and the table alone: hpack's Decoder decodes request blocks, and those
   are remembered until a block of another kind comes, which may change the table, or
   the bounds the decoder checks change.
"""

from __future__ import annotations

from collections.abc import Iterable

import hpack

Field = tuple[bytes, bytes]

# RFC 7541 Appendix A: the static table's names, index 1 first; a name's first index
# is the one used.
_STATIC_NAMES = (
    b":authority", b":method", b":method", b":path", b":path", b":scheme", b":scheme",
    b":status", b":status", b":status", b":status", b":status", b":status", b":status",
    b"accept-charset", b"accept-encoding", b"accept-language", b"accept-ranges",
    b"accept", b"access-control-allow-origin", b"age", b"allow", b"authorization",
    b"cache-control", b"content-disposition", b"content-encoding", b"content-language",
    b"content-length", b"content-location", b"content-range", b"content-type",
    b"cookie", b"date", b"etag", b"expect", b"expires", b"from", b"host", b"if-match",
    b"if-modified-since", b"if-none-match", b"if-range", b"if-unmodified-since",
    b"last-modified", b"link", b"location", b"max-forwards", b"proxy-authenticate",
    b"proxy-authorization", b"range", b"referer", b"refresh", b"retry-after", b"server",
    b"set-cookie", b"strict-transport-security", b"transfer-encoding", b"user-agent",
    b"vary", b"via", b"www-authenticate",
)  # fmt: skip
_NAME_INDEX: dict[bytes, int] = {}
for _index, _name in enumerate(_STATIC_NAMES, start=1):
    _NAME_INDEX.setdefault(_name, _index)
# RFC 7541 Appendix A, indices 8 to 14: the statuses with a whole entry.
_STATUS_INDEX = {b"200": 8, b"204": 9, b"206": 10, b"304": 11, b"400": 12, b"404": 13, b"500": 14}
# Rule "fields that carry credentials".
SENSITIVE_NAMES = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
# The representations' first bits (RFC 7541 §6.1, §6.2.2, §6.2.3, §6.3) and the size of
# their integer prefix.
_INDEXED, _INDEXED_PREFIX = 0x80, 7
_LITERAL, _NEVER_INDEXED, _LITERAL_PREFIX = 0x00, 0x10, 4
_STRING_PREFIX = 7  # §5.2, the H bit clear: raw
TABLE_SIZE_ZERO = b"\x20"  # §6.3: 001, then the size 0 in a 5-bit prefix
# Rule "a field's encoding depends on nothing but the field": a few hundred distinct
# fields is more than an app sends, and small enough to cost nothing.
CACHE_FIELDS = 512
# Rule "a block of indexed fields only": a client repeats a handful of request heads;
# a block of 127 fields or more is never one of those.
MEMO_BLOCKS = 64
MEMO_BLOCK_BYTES = 127


def encode_integer(value: int, prefix_bits: int, first_bits: int) -> bytes:
    """`value` in an N-bit prefix after `first_bits`, then 7-bit continuation bytes
    (RFC 7541 §5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first_bits | value,))
    out = bytearray((first_bits | limit,))
    value -= limit
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_string(data: bytes) -> bytes:
    """A raw string literal (RFC 7541 §5.2)."""
    return encode_integer(len(data), _STRING_PREFIX, 0) + data


def encode_field(name: bytes, value: bytes, sensitive: bool = False) -> bytes:
    """One field's representation (rules "a field is a literal", "fields that carry
    credentials")."""
    if name == b":status" and value in _STATUS_INDEX:
        return encode_integer(_STATUS_INDEX[value], _INDEXED_PREFIX, _INDEXED)
    kind = _NEVER_INDEXED if sensitive or name in SENSITIVE_NAMES else _LITERAL
    index = _NAME_INDEX.get(name)
    if index is None:
        head = bytes((kind,)) + encode_string(name)
    else:
        head = encode_integer(index, _LITERAL_PREFIX, kind)
    return head + encode_string(value)


class LiteralEncoder:
    """An HPACK encoder that never indexes (the module's rules), in place of hpack's
    Encoder on an h2 connection."""

    __slots__ = ("_announce", "_cache", "_table_size")

    def __init__(self) -> None:
        self._announce = True  # rule "nothing is ever added": the first block
        self._cache: dict[Field, bytes] = {}
        self._table_size = 4096  # RFC 9113 §6.5.2: the client's until it says otherwise

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        """The client's SETTINGS_HEADER_TABLE_SIZE (h2 sets it when one comes)."""
        self._table_size = value
        self._announce = True

    def encode(self, headers: Iterable[Field], huffman: bool = True) -> bytes:
        """A header block (`huffman` is hpack's signature's, and ignored: rule "a field
        is a literal")."""
        cache = self._cache
        parts = []
        if self._announce:
            parts.append(TABLE_SIZE_ZERO)
            self._announce = False
        for field in headers:
            # A tuple subclass is hpack's, and may be marked never-indexed: not cached.
            encoded = cache.get(field) if type(field) is tuple else None
            if encoded is None:
                encoded = self._encode_new(field)
            parts.append(encoded)
        return b"".join(parts)

    def _encode_new(self, field: Field) -> bytes:
        name, value = field
        # hpack marks a field never-indexed by its tuple's type and `indexable`.
        if not getattr(field, "indexable", True):
            return encode_field(name, value, sensitive=True)
        encoded = encode_field(name, value)
        if len(self._cache) >= CACHE_FIELDS:
            self._cache.clear()
        self._cache[(name, value)] = encoded
        return encoded


def only_indexed(block: bytes) -> bool:
    """Every byte of `block` a whole indexed field (RFC 7541 §6.1) of index 0 to 126: no
    literal, no table size update, no index in continuation bytes (an 0xFF), so
    decoding it leaves the dynamic table as it was."""
    return bool(block) and min(block) >= _INDEXED and 0xFF not in block


class MemoDecoder(hpack.Decoder):
    """hpack's Decoder, remembering the fields of blocks that change nothing (rule "a
    block of indexed fields only")."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size=max_header_list_size)
        self._memo: dict[bytes, list[hpack.HeaderTuple]] = {}
        self._memo_bounds = (max_header_list_size, self.max_allowed_table_size)

    def decode(self, data: bytes, raw: bool = False) -> Iterable[hpack.HeaderTuple]:
        bounds = (self.max_header_list_size, self.max_allowed_table_size)
        if raw and bounds == self._memo_bounds:
            fields = self._memo.get(data)
            if fields is not None:
                return list(fields)
        decoded = list(super().decode(data, raw))
        if not (raw and only_indexed(data)):
            self._memo.clear()  # the table may have changed: every memo may be wrong
        elif len(data) <= MEMO_BLOCK_BYTES:
            if bounds != self._memo_bounds or len(self._memo) >= MEMO_BLOCKS:
                self._memo.clear()
                self._memo_bounds = bounds
            self._memo[data] = decoded
        return list(decoded)
