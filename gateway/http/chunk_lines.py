"""Chunk lines held to the rules llhttp keeps, for a parser that does not keep them (h11).

h11 de-chunks a body but reads a chunk line loosely: anything after `;` up to CRLF is
taken as extensions, whitespace may end the size, and the size may exceed 64 bits (it
then waits for that much data). llhttp refuses all three. A chunk line that two parsers
read differently is a way to smuggle a request past a proxy (RFC 9112 §7.1, §11.2), so
the h11 session follows the raw body beside h11 and refuses what llhttp refuses. Rules:
1. Only framing is followed: each chunk line is checked, then the chunk's data and its
   CRLF are skipped (h11 itself checks that CRLF, and de-chunks). Following stops at the
   last chunk; its trailer section is h11's.
2. A line is checked once it is complete. Until then it is bounded by the parser beside
   it: h11 refuses a line longer than its buffer limit (max_header_bytes).
3. The grammar is RFC 9112 §7.1.1's, without whitespace around `;` and `=` (llhttp
   refuses it there), and with the empty names and values llhttp allows.
"""

from __future__ import annotations

import re

from gateway.errors import BadRequest

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"  # RFC 9110 §5.6.2 token characters
# RFC 9110 §5.6.4 quoted-string: qdtext (HTAB, SP, VCHAR but `"` and `\`, obs-text) or a
# quoted-pair (`\` and HTAB, SP, VCHAR or obs-text).
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# An extension is `;` and a name, with an optional `=` and value; llhttp lets the name be
# empty when `=` follows, and the value be empty.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)(?:;(?==|%s)%s*(?:=(?:%s*|%s))?)*\r\n" % (_TCHAR, _TCHAR, _TCHAR, _QUOTED)
)
# llhttp keeps a chunk size in 64 bits and refuses a larger one; a parser that wraps it
# would read a different body.
MAX_CHUNK_SIZE = 2**64 - 1
# The CRLF that ends a chunk's data (RFC 9112 §7.1).
_DATA_END_BYTES = 2


class ChunkLines:
    """Follows one chunked request body's framing in its raw bytes (rule "only framing is
    followed")."""

    __slots__ = ("_line", "_skip", "done")

    def __init__(self) -> None:
        self._line = bytearray()  # the chunk line so far
        self._skip = 0  # bytes of chunk data and its CRLF before the next chunk line
        self.done = False  # the last chunk's line has been checked

    def feed(self, data: bytes | bytearray) -> None:
        """Follow `data`; raise BadRequest at a chunk line llhttp would refuse."""
        pos, size = 0, len(data)
        while pos < size and not self.done:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]  # rule "a line is checked once it is complete"
                return
            self._line += data[pos : end + 1]
            pos = end + 1
            self._end_line()

    def _end_line(self) -> None:
        match = _CHUNK_LINE.fullmatch(self._line)
        self._line = bytearray()
        if match is None:
            raise BadRequest("invalid chunk line (RFC 9112 §7.1)")
        size = int(match.group(1), 16)
        if size > MAX_CHUNK_SIZE:
            raise BadRequest("chunk size over 64 bits")
        if size == 0:
            self.done = True
        else:
            self._skip = size + _DATA_END_BYTES
