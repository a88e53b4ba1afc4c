"""Replay every corpus request file (tests/corpus/) into both HTTP sessions.

Each file is fed under every chunking of its bytes: "every chunking" here means the
whole input in one piece, one byte at a time, and every split into two pieces at every
offset. After each piece the events are pulled until NEED_DATA or PAUSED, as the
connection layer does; each RequestHead's target goes through `parse_target` as the
connection applies it, and a PAUSED ends the cycle with a minimal response (then
`start_next_cycle` if the session is reusable). The outcome, the first ProtocolError's
status or the complete requests and the first body, must match the file's `# expect`
for both sessions, so the two parsers give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from corpus import CORPUS_MAX_HEADER_BYTES, CORPUS_MAX_TARGET_BYTES, Case, load_corpus

from gateway.errors import ProtocolError
from gateway.http.events import NEED_DATA, PAUSED, REQUEST_END, RequestData, RequestHead
from gateway.http.h11_session import H11Session
from gateway.http.httptools_session import HttptoolsSession
from gateway.http.session import HTTPSession, parse_target

CASES = load_corpus()
SESSIONS = [H11Session, HttptoolsSession]


@dataclass
class Outcome:
    """What one replay gave: an error status, or the requests that completed."""

    status: int | None = None
    requests: list[bytes] = field(default_factory=list)  # "METHOD target" of each
    body: bytes = b""  # the first request's body

    def __str__(self) -> str:
        if self.status is not None:
            return f"error {self.status}"
        return f"ok, requests {self.requests}, first body {self.body!r}"


class Replay:
    """Drives one session the way gateway/connection.py does, without an app."""

    def __init__(self, session: HTTPSession) -> None:
        self.session = session
        self.outcome = Outcome()
        self._head: RequestHead | None = None
        self.closed = False  # a finished cycle that cannot be reused ends the connection

    def feed(self, piece: bytes) -> None:
        self.session.feed(piece)
        while not self.closed:
            event = self.session.next_event()
            if type(event) is RequestHead:
                parse_target(event.target)
                self._head = event
            elif type(event) is RequestData:
                if not self.outcome.requests:
                    self.outcome.body += event.data
            elif event is REQUEST_END:
                assert self._head is not None
                self.outcome.requests.append(self._head.method + b" " + self._head.target)
            elif event is NEED_DATA:
                return
            elif event is PAUSED:
                self._finish_cycle()
            else:
                raise AssertionError(f"unexpected event {event!r}")

    def _finish_cycle(self) -> None:
        self.session.response_head(200, [(b"content-length", b"0")])
        self.session.response_end()
        if self.session.reusable:
            self.session.start_next_cycle()
        else:
            self.closed = True


def replay(session_class: type[HTTPSession], pieces: list[bytes]) -> Outcome:
    session = session_class(CORPUS_MAX_HEADER_BYTES, CORPUS_MAX_TARGET_BYTES)
    run = Replay(session)
    try:
        for piece in pieces:
            if run.closed:
                break
            run.feed(piece)
    except ProtocolError as exc:
        return Outcome(status=exc.status)
    return run.outcome


def chunkings(raw: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [raw]
    yield "one byte at a time", [raw[i : i + 1] for i in range(len(raw))]
    for offset in range(1, len(raw)):
        yield f"split at byte {offset}", [raw[:offset], raw[offset:]]


def matches(case: Case, outcome: Outcome) -> bool:
    if case.status is not None:
        return outcome.status == case.status
    return (
        outcome.status is None
        and len(outcome.requests) == case.requests
        and outcome.body == case.body
    )


def expected(case: Case) -> str:
    if case.status is not None:
        return f"error {case.status}"
    return f"ok, {case.requests} request(s), first body {case.body!r}"


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("session_class", SESSIONS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_request_file_under_every_chunking(case: Case, session_class: type[HTTPSession]) -> None:
    for how, pieces in chunkings(case.raw):
        outcome = replay(session_class, pieces)
        assert matches(case, outcome), (
            f"{case.name} ({case.why}), fed {how}: got {outcome}, expected {expected(case)}"
        )
