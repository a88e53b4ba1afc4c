"""permessage-deflate (RFC 7692) for the WebSocket session: the offer, and a bound.

Rules:
1. The first acceptable offer wins: the client lists them by preference (RFC 7692 §5).
   An offer with an unknown, repeated or invalid parameter is declined (§5, §7.1), and
   so is one whose window bits wsproto cannot use (8); the next offer is tried.
2. Inflation is bounded: a message stops inflating once it passes its size limit, and
   the connection fails with 1009 (wsproto alone would inflate any frame whole).
"""

from __future__ import annotations

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

# Compressed input inflated per step. Deflate inflates at most about 1032:1, so one step
# yields at most ~4 MiB before the message's running size is checked again.
INFLATE_STEP_BYTES = 4096
# RFC 7692 §7.1: the parameters a permessage-deflate offer may carry.
DEFLATE_PARAMETERS = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)


def negotiate_deflate(
    offers: list[str], max_message_bytes: int
) -> tuple[BoundedDeflate, bytes] | None:
    """The extension and the Sec-WebSocket-Extensions value for the first acceptable
    permessage-deflate offer (RFC 7692 §5: the client lists them by preference)."""
    for offer in offers:
        normalised = _deflate_offer(offer)
        if normalised is None:
            continue
        extension = BoundedDeflate(max_message_bytes)
        params = extension.accept(normalised)  # None: window bits wsproto cannot use
        if isinstance(params, str):
            value = "permessage-deflate" + (f"; {params}" if params else "")
            return extension, value.encode("ascii")
    return None


def _deflate_offer(offer: str) -> str | None:
    """A permessage-deflate offer in the plain form wsproto parses, or None if the offer
    is for another extension or must be declined (RFC 7692 §5, §7.1)."""
    name, *params = (part.strip() for part in offer.split(";"))
    if name.lower() != "permessage-deflate":
        return None
    seen: dict[str, str | None] = {}
    for param in params:
        key, has_value, raw = (part.strip() for part in param.partition("="))
        key, value = key.lower(), raw.strip('"') if has_value else None
        if key in seen or key not in DEFLATE_PARAMETERS or not _valid_deflate_value(key, value):
            return None
        seen[key] = value
    parts = [name.lower(), *(key if v is None else f"{key}={v}" for key, v in seen.items())]
    return "; ".join(parts)


def _valid_deflate_value(key: str, value: str | None) -> bool:
    if key.endswith("_no_context_takeover"):
        return value is None  # RFC 7692 §7.1.1: these take no value
    if value is None:
        return key == "client_max_window_bits"  # §7.1.2.2: the client's may be bare
    return value.isdigit() and 8 <= int(value) <= 15  # §7.1.2: 8 to 15


class BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, inflating a message only up to its size limit.

    wsproto inflates each piece of a frame whole: a frame of a few KiB of compressed
    zeros would become gigabytes before any count could stop it (RFC 7692 §8.1 leaves
    the bound to the endpoint). Compressed input is inflated INFLATE_STEP_BYTES at a
    time, and a message whose inflated size passes the limit fails with 1009.
    """

    def __init__(self, max_message_bytes: int) -> None:
        super().__init__()
        self._limit = max_message_bytes
        self._inflated = 0  # bytes inflated so far for the current message
        self._compressed = False  # the current message has RSV1 set (RFC 7692 §6)
        self._control = False  # the current frame is a control frame (never compressed)

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, length: int
    ) -> CloseReason | RsvBits:
        result = super().frame_inbound_header(proto, opcode, rsv, length)
        self._control = opcode.iscontrol()
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:  # a message's first frame
            self._compressed, self._inflated = rsv.rsv1, 0
        return result

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._control or not self._compressed:
            return super().frame_inbound_payload_data(proto, data)
        inflated = bytearray()
        for start in range(0, len(data), INFLATE_STEP_BYTES):
            piece = super().frame_inbound_payload_data(
                proto, data[start : start + INFLATE_STEP_BYTES]
            )
            if isinstance(piece, CloseReason):
                return piece
            if not self._count(piece):
                return CloseReason.MESSAGE_TOO_BIG
            inflated += piece
        return bytes(inflated)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        tail = super().frame_inbound_complete(proto, fin)
        if isinstance(tail, bytes) and not self._count(tail):
            return CloseReason.MESSAGE_TOO_BIG
        return tail

    def _count(self, piece: bytes) -> bool:
        """Add inflated bytes to the message's size; False once it is over the limit."""
        self._inflated += len(piece)
        return self._inflated <= self._limit
