"""Lifecycles as data: an enum's states, one table of the transitions allowed between
them, and the one check that refuses every other (h11's `_state.py` is the model).

Rules:
1. One table per lifecycle, written next to its enum by the module that owns the state;
   only that owner moves it, through `Transitions.move`.
2. The table names every state, a last one with no way out: a state added to the enum
   and forgotten in the table is refused when the table is built, at import.
3. A transition not in the table raises LifecycleError. It is a bug in the owner, never a
   peer's doing: what a peer sends is checked against the state before anything moves.
4. Layer 0: the standard library only, and nothing on a request's path but a dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Generic, TypeVar

State = TypeVar("State", bound=Enum)


class LifecycleError(RuntimeError):
    """A transition its table does not allow (a bug, so a traceback: not a GatewayError)."""


class Transitions(Generic[State]):
    """The allowed transitions of one lifecycle, and the check that holds them."""

    __slots__ = ("_allowed", "name")

    def __init__(self, name: str, table: Mapping[State, Iterable[State]]) -> None:
        self.name = name
        self._allowed = {state: frozenset(nexts) for state, nexts in table.items()}
        missing = set(type(next(iter(self._allowed)))) - self._allowed.keys()
        if missing:  # rule "the table names every state": fails at import
            names = ", ".join(sorted(state.name for state in missing))
            raise LifecycleError(f"{name}: the table leaves out {names}")

    def allows(self, current: State, new: State) -> bool:
        return new in self._allowed[current]

    def move(self, current: State, new: State) -> State:
        """`new`, if `current` may become it; LifecycleError otherwise."""
        if new not in self._allowed[current]:
            raise LifecycleError(f"{self.name}: no transition from {current.name} to {new.name}")
        return new
