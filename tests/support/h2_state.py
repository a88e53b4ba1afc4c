"""What h2 keeps of a connection and its streams, as plain data, so that a lane of ours
(gateway/http/h2_receive_lane.py, h2_fast_lane.py) can be held against h2's own way."""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.stream

# An H2Stream's attributes that are objects without a value of their own to compare:
# the shared configuration, and the two machines, compared field by field below.
_STREAM_OBJECTS = ("config", "state_machine", "_inbound_window_manager")


def stream_state(stream: h2.stream.H2Stream) -> dict[str, Any]:
    """Every field of the stream, its state machine's and its receive window's."""
    fields = {name: value for name, value in vars(stream).items() if name not in _STREAM_OBJECTS}
    fields["class"] = type(stream)  # the session's own, which does not count DATA
    fields["machine"] = dict(vars(stream.state_machine))
    fields["receive_window"] = dict(vars(stream._inbound_window_manager))
    return fields


def h2_state(conn: h2.connection.H2Connection) -> dict[str, Any]:
    """The connection's state, once h2 has dropped the streams it holds closed (as it does
    at its next count of open streams: the lanes drop them at once)."""
    open_inbound = conn.open_inbound_streams
    return {
        "state": conn.state_machine.state,
        "highest_inbound": conn.highest_inbound_stream_id,
        "open_inbound": open_inbound,
        "closed": dict(conn._closed_streams),
        "receive_window": conn.inbound_flow_control_window,
        "send_window": conn.outbound_flow_control_window,
        "table": list(conn.decoder.header_table.dynamic_entries),
        "streams": {sid: stream_state(stream) for sid, stream in sorted(conn.streams.items())},
    }
