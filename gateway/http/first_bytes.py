"""What the first bytes of a cleartext connection speak, with `http2` on: the HTTP/2
preface (prior knowledge, RFC 9113 §3.3), HTTP/1.x, or another protocol. Sans I/O: the
connection (gateway/server/connection.py) hands over what it has read and acts on the
answer.

Rules:
1. Bytes that are the start of the preface are not decided yet: a preface may come in
   pieces, and any split of it is still HTTP/2.
2. The whole preface is HTTP/2, and everything after it is HTTP/2's too.
3. A first line shaped like a request line (three words, RFC 9112 §3) whose last word
   is not an HTTP version (RFC 9112 §2.3: "HTTP/" then the digits) names another
   protocol: an HTTP/2 client whose preface is broken, RTSP, SIP. Nobody answers it: an
   HTTP/1.1 reply is in a language its client does not speak, and for an HTTP/2 client
   an invalid preface is a connection error whose GOAWAY may be left out (RFC 9113
   §3.4). The connection closes without a word. The first line is looked at in the
   bytes that ruled the preface out (the first read, in practice); a line not complete
   in them is HTTP/1.1's.
4. This module imports no HTTP/2 machinery: every cleartext connection compares its
   first bytes with PREFACE, and h2 is imported only at the first connection that
   opens with it (gateway/server/connection.py), so a worker whose clients all speak
   HTTP/1.1 never loads it.
5. Everything else is HTTP/1.1's, which answers what is wrong with it (a 400, a 501, or
   a 505 for "PRI * HTTP/2.0" followed by anything but the rest of the preface).
"""

from __future__ import annotations

import enum

# The client connection preface (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FirstBytes(enum.Enum):
    UNDECIDED = enum.auto()  # the start of the preface, so far
    HTTP2 = enum.auto()
    HTTP1 = enum.auto()
    OTHER_PROTOCOL = enum.auto()


def classify_first_bytes(seen: bytes) -> FirstBytes:
    """What the bytes read so far on a cleartext connection speak (the module's rules)."""
    if seen.startswith(PREFACE):
        return FirstBytes.HTTP2
    if PREFACE.startswith(seen):
        return FirstBytes.UNDECIDED
    if names_another_protocol(seen):
        return FirstBytes.OTHER_PROTOCOL
    return FirstBytes.HTTP1


def names_another_protocol(seen: bytes) -> bool:
    """A complete first line of three words whose last is no HTTP version (rule "a first
    line shaped like a request line")."""
    end = seen.find(b"\n")
    if end < 0:
        return False
    words = seen[:end].rstrip(b"\r").split(b" ")
    return len(words) == 3 and all(words) and not words[2].startswith(b"HTTP/")
