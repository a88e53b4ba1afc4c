"""How a parent process ends a child it started: what it has sent the child so far, and
what the child's exit then means. The supervisor ends its workers this way
(gateway/process/children.py), and the reloader its server (gateway/process/reload.py).

Rules:
1. One enum, Ending, moved only through ENDING (gateway/lifecycle.py): NOT_ASKED;
   STOPPING once SIGTERM is sent, when the child is held to the stop's bound; and after
   SIGKILL either HUNG (the child went silent, so its exit is a failure) or KILLED (it
   did not stop in time: its exit was asked for). A stop that reaches a HUNG child
   before its exit is reaped moves it on to STOPPING: that exit is then expected.
2. Each ending is sent with its own signal (ENDING_SIGNALS): a caller moves the child
   and signals it in one step, and cannot send one signal for another ending. Other
   signals (a fast stop's SIGQUIT or second TERM, USR1, the last resort's SIGKILL on a
   parent's way out) are sent beside it and move nothing.
3. Once SIGKILL is sent no deadline is left: only the child's exit is awaited. (A HUNG
   child that a stop moves on to STOPPING is held to the stop's bound again; its exit
   comes first, since SIGKILL cannot be caught.)
"""

from __future__ import annotations

import signal
from enum import Enum

from gateway.lifecycle import Transitions


class Ending(Enum):
    """What the parent has done to end a child (rule "one enum, Ending")."""

    NOT_ASKED = "not asked"  # left to run: an exit is a failure
    STOPPING = "stopping"  # sent SIGTERM: held to the stop's bound; its exit is expected
    HUNG = "hung"  # silent past its timeout, sent SIGKILL: its exit is a failure
    KILLED = "killed"  # not stopped by the stop's bound, sent SIGKILL: exit expected

    @property
    def exit_expected(self) -> bool:
        return self is Ending.STOPPING or self is Ending.KILLED


ENDING = Transitions(
    "child ending",
    {
        Ending.NOT_ASKED: {Ending.STOPPING, Ending.HUNG},
        Ending.STOPPING: {Ending.KILLED},
        # A stop that comes after the kill (the server stops, a reload): its exit, which
        # SIGCHLD is about to tell, is then expected like any stopped child's.
        Ending.HUNG: {Ending.STOPPING},
        Ending.KILLED: (),
    },
)
# The signal each ending is sent with (rule "each ending is sent with its own signal").
ENDING_SIGNALS = {
    Ending.STOPPING: signal.SIGTERM,
    Ending.HUNG: signal.SIGKILL,
    Ending.KILLED: signal.SIGKILL,
}
