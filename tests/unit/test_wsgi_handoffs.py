"""adapters: the hand-offs between a WSGI mount's loop and its pool threads come in
batches (issue 18, point 3): adapters/pool.py, rule "one wake-up in flight", and
adapters/wakeups.py, rule "one hand-off per batch".

Real threads and real asyncio loops; the counts are the loop's own call_soon_threadsafe
calls and the pool's count of the parked threads its submit woke.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from support.asgi_seams import Receive, Send, body, http_scope
from support.deadlines import wait_until

from gateway.adapters.pool import ThreadPool
from gateway.adapters.wakeups import LoopWakeups
from gateway.adapters.wsgi import WSGIAdapter

StartResponse = Callable[..., Callable[[bytes], None]]
WAIT_S = 5.0  # deadline for any cross-thread wait in these tests
BURST = 8  # requests (or calls) that meet in one burst: more than one, few threads


def count_threadsafe_calls(loop: asyncio.AbstractEventLoop) -> list[int]:
    """A one-item list counting the loop's call_soon_threadsafe calls from now on."""
    calls = [0]
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    return calls


class Closed:
    """A WSGI result that reports its close(), which comes after its end was posted
    (adapters/wsgi.py, rule "headers go out with the first non-empty chunk")."""

    def __init__(self, closed: threading.Semaphore) -> None:
        self._closed = closed

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"done"])

    def __len__(self) -> int:
        return 1

    def close(self) -> None:
        self._closed.release()


def test_responses_posted_in_a_burst_wake_the_loop_once() -> None:
    """BURST responses posted while their loop is busy cost it one hand-off, not one
    each: every loop-side call is parked on its empty channel, the threads post while
    the loop is held up, and one call_soon_threadsafe wakes them all."""
    release = threading.Event()
    entered = threading.Semaphore(0)
    closed = threading.Semaphore(0)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Closed:
        entered.release()
        release.wait(WAIT_S)
        start_response("200 OK", [])
        return Closed(closed)

    adapter = WSGIAdapter(app, BURST, "burst")  # type: ignore[arg-type]

    async def main() -> tuple[int, list[Send]]:
        sends = [Send() for _ in range(BURST)]
        calls = [
            asyncio.create_task(adapter(http_scope(), Receive(body(b"")), send)) for send in sends
        ]
        for _ in range(BURST):  # each call submitted, then parked on its empty channel
            assert await asyncio.to_thread(entered.acquire, timeout=WAIT_S)
        wakeups = count_threadsafe_calls(asyncio.get_running_loop())
        release.set()
        # The loop is held up here while every thread posts its response.
        for _ in range(BURST):
            assert closed.acquire(timeout=WAIT_S)
        await asyncio.wait_for(asyncio.gather(*calls), WAIT_S)
        return wakeups[0], sends

    try:
        wakeups, sends = asyncio.run(main())
    finally:
        adapter.close()
    assert [send.body for send in sends] == [b"done"] * BURST
    assert wakeups == 1


def test_a_burst_wakes_one_parked_thread_which_passes_the_work_on() -> None:
    """A burst submitted in one loop turn to a pool whose threads are all parked: submit
    wakes one thread, the threads wake each other, and the burst still runs on every
    thread at once (the first BURST calls can only meet on separate threads)."""
    pool = ThreadPool(BURST, "parked")
    try:
        warmed = threading.Barrier(BURST + 1, timeout=WAIT_S)
        for _ in range(BURST):  # start every thread, then let them all park
            pool.submit(warmed.wait)
        warmed.wait()
        wait_until(lambda: pool.parked_threads == BURST, WAIT_S)
        woken_before = pool.submit_wakeups
        together = threading.Barrier(BURST, timeout=WAIT_S)
        finished = threading.Semaphore(0)
        met: list[bool] = []

        def meet() -> None:
            try:
                together.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
            finally:
                finished.release()

        async def one_loop_turn() -> None:  # twice the threads: half wait in the queue
            for _ in range(BURST):
                pool.submit(meet)
            for _ in range(BURST):
                pool.submit(finished.release)

        asyncio.run(one_loop_turn())
        for _ in range(2 * BURST):
            assert finished.acquire(timeout=WAIT_S)
        assert met == [True] * BURST
        # One, or two when the woken thread got the GIL mid-turn (the OS held the loop's
        # thread up past the switch interval) and the loop read the flag in the few
        # bytecodes between that thread clearing it and passing the work on. A wake-up
        # per call, as before batching, would be BURST.
        assert 1 <= pool.submit_wakeups - woken_before <= 2
    finally:
        pool.close()


def named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_close_wakes_a_parked_thread_and_lets_queued_calls_run_first() -> None:
    """adapters/pool.py, rule "`close` lets queued calls run": a parked thread ends at
    once, a busy one after the calls queued behind it."""
    gate = threading.Event()
    ran: list[int] = []
    one = ThreadPool(1, "close-one")
    two = ThreadPool(2, "close-two")
    try:
        one.submit(gate.wait)
        one.submit(lambda: ran.append(1))  # queued behind the gate
        one.submit(lambda: ran.append(2))
        one.close()
        two.submit(gate.wait)  # holds one thread
        two.submit(lambda: ran.append(0))  # runs on a second thread, which then parks
        wait_until(lambda: two.parked_threads == 1, WAIT_S)
        two.close()
        wait_until(lambda: len(named("close-two_")) == 1, WAIT_S)  # the parked one ended
        assert ran == [0]
    finally:
        gate.set()
    wait_until(lambda: not named("close-one_") and not named("close-two_"), WAIT_S)
    assert ran == [0, 1, 2]


def test_futures_resolved_from_threads_in_a_race_with_the_drain_all_complete() -> None:
    """adapters/wakeups.py, rule "nothing is lost": threads queue futures while the loop
    drains; every future completes, with fewer drains than futures."""
    threads_n, per_thread = 4, 250  # enough rounds for the two sides to interleave

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        wakeups = LoopWakeups(loop)
        futures = [loop.create_future() for _ in range(threads_n * per_thread)]

        def post(mine: list[asyncio.Future[None]]) -> None:
            for future in mine:
                wakeups.resolve(future)

        threads = [
            threading.Thread(target=post, args=(futures[i::threads_n],)) for i in range(threads_n)
        ]
        for thread in threads:
            thread.start()
        await asyncio.wait_for(asyncio.gather(*futures), WAIT_S)
        for thread in threads:
            thread.join(WAIT_S)
        return wakeups.drains, len(futures)

    drains, futures = asyncio.run(main())
    assert 1 <= drains < futures


def test_a_cancelled_waiter_and_a_closed_loop_are_left_alone() -> None:
    loop = asyncio.new_event_loop()
    wakeups = LoopWakeups(loop)
    cancelled: asyncio.Future[None] = loop.create_future()
    cancelled.cancel()
    waiting: asyncio.Future[None] = loop.create_future()
    wakeups.resolve(cancelled)
    wakeups.resolve(waiting)
    loop.run_until_complete(asyncio.wait_for(waiting, WAIT_S))
    loop.close()
    wakeups.resolve(loop.create_future())  # no loop to wake: no error either
