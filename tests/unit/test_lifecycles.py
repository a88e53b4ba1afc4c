"""The lifecycles kept as enums with a table of transitions (gateway/lifecycle.py): the
worker's, a supervised child's (what it said, what the supervisor did) and the fallback
tape's. Each table is checked for what it allows and what it refuses: a refused
transition raises, and the owners move only through their tables. No sockets, no
processes."""

from __future__ import annotations

import asyncio
import os
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from gateway.asgi import Message
from gateway.config.loader import load_config
from gateway.http.h2_goaway import GOAWAY_STEPS, GoawayStep
from gateway.lifecycle import LifecycleError, Transitions
from gateway.migration.rules import TAPE_LIFECYCLE, Recording, Tape
from gateway.process.children import PROGRESS, Progress, WorkerProcess
from gateway.process.ending import ENDING, Ending
from gateway.process.pipe import WorkerLink
from gateway.process.worker import WORKER_LIFECYCLE, Worker, WorkerState

TABLES: list[tuple[Transitions[Any], type[Enum]]] = [
    (WORKER_LIFECYCLE, WorkerState),
    (PROGRESS, Progress),
    (ENDING, Ending),
    (TAPE_LIFECYCLE, Recording),
    (GOAWAY_STEPS, GoawayStep),
]


class Light(Enum):
    RED = "red"
    GREEN = "green"
    AMBER = "amber"


# -- the check itself ---------------------------------------------------------------------


def test_a_table_that_leaves_out_a_state_is_refused_when_built() -> None:
    with pytest.raises(LifecycleError, match="leaves out AMBER"):
        Transitions("light", {Light.RED: {Light.GREEN}, Light.GREEN: {Light.RED}})


def test_a_transition_outside_the_table_raises_and_names_both_states() -> None:
    light = Transitions("light", {Light.RED: {Light.GREEN}, Light.GREEN: (), Light.AMBER: ()})
    assert light.move(Light.RED, Light.GREEN) is Light.GREEN
    with pytest.raises(LifecycleError, match="light: no transition from GREEN to RED"):
        light.move(Light.GREEN, Light.RED)
    with pytest.raises(LifecycleError):
        light.move(Light.RED, Light.RED)  # staying put is a transition too, and not listed


@pytest.mark.parametrize(("table", "states"), TABLES, ids=[t.name for t, _ in TABLES])
def test_every_table_refuses_what_it_does_not_list(
    table: Transitions[Any], states: type[Enum]
) -> None:
    """Every pair of states is either allowed or raises: the table is the whole truth."""
    for current in states:
        for new in states:
            if table.allows(current, new):
                assert table.move(current, new) is new
            else:
                with pytest.raises(LifecycleError):
                    table.move(current, new)


# -- the worker -----------------------------------------------------------------------------


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    path = tmp_path / "gateway.toml"
    path.write_text('[[mount]]\nprefix = "/"\napp = "nowhere:app"\n')
    return Worker(load_config(path), [], [])


def test_the_worker_allows_its_stops_in_order_only() -> None:
    allowed = {
        (WorkerState.STARTING, WorkerState.READY),
        (WorkerState.READY, WorkerState.STOPPING),
        (WorkerState.STOPPING, WorkerState.STOPPING_FAST),
        (WorkerState.STARTING, WorkerState.STOPPING_BEFORE_READY),
    }
    for current, new in allowed:
        assert WORKER_LIFECYCLE.allows(current, new)
    for current, new in [
        (WorkerState.READY, WorkerState.STARTING),  # a stopped worker never starts again
        (WorkerState.STOPPING, WorkerState.READY),
        (WorkerState.STOPPING_FAST, WorkerState.STOPPING),  # a fast stop stays fast
        (WorkerState.READY, WorkerState.STOPPING_BEFORE_READY),
    ]:
        with pytest.raises(LifecycleError):
            WORKER_LIFECYCLE.move(current, new)


def test_a_stop_before_ready_then_again_is_fast_and_stays_fast(worker: Worker) -> None:
    seen = [(worker.lifecycle, worker.ready, worker.stopping)]
    for _ in range(3):  # the third: SIGQUIT again, with no transition left and no error
        worker.request_stop()
        seen.append((worker.lifecycle, worker.ready, worker.stopping))
    assert seen == [
        (WorkerState.STARTING, False, False),
        (WorkerState.STOPPING_BEFORE_READY, False, True),
        (WorkerState.STOPPING_FAST, False, True),
        (WorkerState.STOPPING_FAST, False, True),
    ]


def test_a_fast_request_skips_the_graceful_stop(worker: Worker) -> None:
    worker.request_stop(fast=True)
    assert worker.lifecycle is WorkerState.STOPPING_FAST


def test_a_waiting_serve_wakes_at_the_stop(worker: Worker) -> None:
    async def scenario() -> WorkerState:
        waiting = asyncio.ensure_future(worker._until(lambda reached: reached.stopping))
        await asyncio.sleep(0)
        assert not waiting.done()
        asyncio.get_running_loop().call_soon(worker.request_stop)
        await asyncio.wait_for(waiting, 10)
        return worker.lifecycle

    assert asyncio.run(scenario()) is WorkerState.STOPPING_BEFORE_READY


# -- a supervised child -----------------------------------------------------------------


def test_a_childs_progress_goes_forward_only() -> None:
    link = WorkerLink(_pipe_read_end())
    try:
        process = WorkerProcess(pid=0, generation=1, link=link, deadline=0.0)
        assert not process.ready and not process.retiring and not process.stopping
        with pytest.raises(LifecycleError):
            process.advance(Progress.RETIRING)  # RETIRE before READY: never recorded
        process.advance(Progress.READY)
        process.advance(Progress.RETIRING)
        assert process.ready and process.retiring
        with pytest.raises(LifecycleError):
            process.advance(Progress.READY)
    finally:
        link.close()


def test_the_supervisor_ends_a_child_through_its_table() -> None:
    assert ENDING.allows(Ending.NOT_ASKED, Ending.STOPPING)
    assert ENDING.allows(Ending.NOT_ASKED, Ending.HUNG)
    assert ENDING.allows(Ending.STOPPING, Ending.KILLED)
    assert ENDING.allows(Ending.HUNG, Ending.STOPPING)  # a stop after the kill: expected
    for current, new in [
        (Ending.KILLED, Ending.STOPPING),  # killed once: nothing follows but SIGCHLD
        (Ending.STOPPING, Ending.HUNG),  # a stopping worker's silence is not a failure
        (Ending.STOPPING, Ending.NOT_ASKED),
    ]:
        with pytest.raises(LifecycleError):
            ENDING.move(current, new)
    assert [e for e in Ending if e.exit_expected] == [Ending.STOPPING, Ending.KILLED]


def _pipe_read_end() -> int:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    return read_fd


# -- the fallback tape --------------------------------------------------------------------


def _tape(chunks: list[bytes], limit: int, ended: bool = True) -> Tape:
    """A tape that has given the first app `chunks`, the last with more_body False when
    the body `ended`."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - ended}
        for n, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    tape = Tape(receive, limit, websocket=False)

    async def read_all() -> None:
        for _ in chunks:
            await tape()

    asyncio.run(read_all())
    return tape


def test_a_tape_keeps_a_body_within_its_limit() -> None:
    tape = _tape([b"ab", b"cd"], limit=4)
    assert tape._recording is Recording.KEPT
    assert tape.recorded() == b"abcd" and tape.hand_over()


def test_a_tape_past_its_limit_keeps_nothing_and_refuses_the_replay() -> None:
    tape = _tape([b"ab", b"cd", b"e"], limit=4)
    assert tape._recording is Recording.OVER
    assert tape.recorded() is None and not tape.hand_over()
    with pytest.raises(LifecycleError):
        tape._move(Recording.KEPT)  # over is final


def test_a_tape_still_reading_replays_what_it_kept_and_the_rest_live() -> None:
    tape = _tape([b"ab"], limit=4, ended=False)
    assert tape._recording is Recording.KEEPING
    assert tape.recorded() is None  # no whole body for a shadow copy yet
    assert tape.hand_over()

    async def live() -> Message:
        return {"type": "http.request", "body": b"cd", "more_body": False}

    async def replayed() -> list[Message]:
        receive = tape.replay(live)
        return [await receive(), await receive()]

    first, rest = asyncio.run(replayed())
    assert (first["body"], first["more_body"]) == (b"ab", True)
    assert rest["body"] == b"cd"
    with pytest.raises(LifecycleError):
        TAPE_LIFECYCLE.move(Recording.KEPT, Recording.OVER)  # a kept body is final
