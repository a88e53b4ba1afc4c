"""adapters: loading apps by reference, interface detection, and the WSGI adapter.

No sockets: the adapter is driven with asyncio.run and hand-written receive/send
coroutines (test seams standing in for the server, not mocks of the adapter).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import sys
import textwrap
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from support.asgi_seams import Receive, Send, body, http_scope
from support.deadlines import wait_until

from gateway.adapters import (
    InterfaceMismatch,
    LoadedApp,
    WSGIAdapter,
    detect_interface,
    import_from_string,
    interface_mismatch,
    load_app,
)
from gateway.adapters import environ as wsgi_environ
from gateway.adapters.environ import ErrorStream, build_environ
from gateway.adapters.pool import ThreadPool
from gateway.asgi import Interface, Message
from gateway.errors import AppLoadError, ClientDisconnected, RequestBodyTooLarge

StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
WAIT_S = 5.0  # deadline for any cross-thread wait in these tests


# ---------------------------------------------------------------------------- seams


@pytest.fixture
def adapt() -> Iterator[Callable[[WSGIApp], WSGIAdapter]]:
    made: list[WSGIAdapter] = []

    def make(app: WSGIApp) -> WSGIAdapter:
        made.append(WSGIAdapter(app, 4, "test"))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for adapter in made:
        adapter.close()


def serve(adapter: Any, scope: Message, receive: Receive | None = None) -> Send:
    send = Send()
    asyncio.run(adapter(scope, receive or Receive(body(b"")), send))
    return send


def hello(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class Closing:
    """A WSGI iterable that records close() (PEP 3333 requires it, always)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed.set()


# ---------------------------------------------------------------------------- loading


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """write(name, source): a module on sys.path; gwtest_* modules are forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()

    yield write
    for name in [n for n in sys.modules if n.startswith("gwtest_")]:
        del sys.modules[name]


GOOD = """
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"good"]

    class Holder:
        app = app

    def make():
        return app

    def broken():
        raise ValueError("boom")

    not_callable = 42
"""


def test_import_attribute_dotted_and_factory(modules: Callable[..., None]) -> None:
    modules("gwtest_good", GOOD)
    app = import_from_string("gwtest_good:app")
    assert callable(app)
    assert import_from_string("gwtest_good:Holder.app") is app
    assert import_from_string("gwtest_good:make()") is app


@pytest.mark.parametrize(
    ("ref", "expected", "cause"),
    [
        ("gwtest_missing:app", "module 'gwtest_missing' not found", ModuleNotFoundError),
        ("gwtest_nopkg.sub:app", "no package 'gwtest_nopkg'", ModuleNotFoundError),
        ("gwtest_good:nope", "module 'gwtest_good' has no attribute 'nope'", AttributeError),
        ("gwtest_good:Holder.nope", "has no attribute 'Holder.nope'", AttributeError),
        ("gwtest_good:broken()", "factory broken() raised ValueError: boom", ValueError),
        ("gwtest_good:not_callable()", "not_callable is not callable", None),
        (
            "gwtest_imports_missing:app",
            "importing module 'gwtest_imports_missing' raised ModuleNotFoundError: "
            "No module named 'gwtest_no_such_dependency'",
            ModuleNotFoundError,
        ),
        ("gwtest_raises:app", "raised RuntimeError: db down", RuntimeError),
        ("gwtest_syntax:app", "syntax error in ", SyntaxError),
        ("gwtest_good", "expected 'module:attribute'", None),
        ("gwtest_good:", "expected 'module:attribute'", None),
        ("gwtest_good:a b", "expected 'module:attribute'", None),
    ],
)
def test_import_failures_name_the_reference_and_the_cause(
    modules: Callable[..., None], ref: str, expected: str, cause: type[BaseException] | None
) -> None:
    modules("gwtest_good", GOOD)
    modules("gwtest_imports_missing", "import gwtest_no_such_dependency\n")
    modules("gwtest_raises", "raise RuntimeError('db down')\n")
    modules("gwtest_syntax", "def broken(:\n    pass\n")
    with pytest.raises(AppLoadError) as info:
        import_from_string(ref)
    message = str(info.value)
    assert repr(ref) in message
    assert expected in message
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)
    if ref == "gwtest_imports_missing:app":
        assert "not found" not in message  # told apart from a missing module
    if ref == "gwtest_syntax:app":
        assert "gwtest_syntax.py, line 1" in message


# --------------------------------------------------------------------------- detection


class ASGI2App:
    def __init__(self, scope: Message) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2"})


def asgi2_function(scope: Message) -> Callable[..., Any]:
    return ASGI2App(scope)


async def asgi3_function(scope: Message, receive: Any, send: Any) -> None:
    raise NotImplementedError


def django_wsgi_handler() -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="gateway-tests",
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            ROOT_URLCONF="gwtest_django_urls",
        )
    import django
    from django.core.handlers.wsgi import WSGIHandler

    django.setup(set_prefix=False)
    return WSGIHandler()


def test_detect_wsgi() -> None:
    from flask import Flask

    assert detect_interface(hello) == Interface.WSGI
    assert detect_interface(Flask(__name__)) == Interface.WSGI
    assert detect_interface(django_wsgi_handler()) == Interface.WSGI


def test_detect_asgi() -> None:
    from fastapi import FastAPI
    from starlette.applications import Starlette

    assert detect_interface(FastAPI()) == Interface.ASGI
    assert detect_interface(Starlette()) == Interface.ASGI
    assert detect_interface(asgi3_function) == Interface.ASGI
    assert detect_interface(ASGI2App) == Interface.ASGI
    assert detect_interface(asgi2_function) == Interface.ASGI


def test_detect_refuses_to_guess() -> None:
    def anything(*args: Any) -> None: ...

    with pytest.raises(AppLoadError, match="set interface"):
        detect_interface(anything)


def test_load_asgi2_app_is_served_as_asgi3(modules: Callable[..., None]) -> None:
    modules(
        "gwtest_asgi2",
        """
        class App:
            def __init__(self, scope):
                self.scope = scope

            async def __call__(self, receive, send):
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"asgi2"})
        """,
    )
    for interface in (Interface.AUTO, Interface.ASGI):
        loaded = load_app("gwtest_asgi2:App", interface, 4, "a2")
        assert (loaded.interface, loaded.pool_size, loaded.supports_lifespan) == (
            "asgi",
            None,
            True,
        )
        assert serve(loaded.app, http_scope()).body == b"asgi2"
        loaded.close()


def test_load_wsgi_app(modules: Callable[..., None]) -> None:
    modules("gwtest_good", GOOD)
    loaded = load_app("gwtest_good:make()", Interface.AUTO, 3, "legacy")
    assert isinstance(loaded, LoadedApp)
    assert isinstance(loaded.app, WSGIAdapter)
    assert (loaded.interface, loaded.pool_size, loaded.supports_lifespan) == ("wsgi", 3, False)
    assert loaded.reference == "gwtest_good:make()"
    send = serve(loaded.app, http_scope())
    assert (send.status, send.body) == (200, b"good")
    loaded.close()
    loaded.close()  # idempotent


def test_load_explicit_interface_wins(modules: Callable[..., None]) -> None:
    # When the signature does not say (*args), the declared interface is taken as is.
    modules("gwtest_good", GOOD + "\n    def unsure(*args):\n        return app(*args)\n")
    loaded = load_app("gwtest_good:unsure", Interface.ASGI, 3, "x")
    assert loaded.interface == "asgi"
    assert loaded.app is import_from_string("gwtest_good:unsure")
    with pytest.raises(AppLoadError, match="interface must be one of"):
        load_app("gwtest_good:app", "rsgi", 3, "x")  # type: ignore[arg-type]  # the guard
    with pytest.raises(AppLoadError, match="not an app"):
        load_app("gwtest_good:not_callable", Interface.AUTO, 3, "x")


# ----------------------------------------------------------------------------- environ


def capture(store: dict[str, Any]) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        store.update(environ)
        start_response("204 No Content", [])
        return []

    return app


def test_environ_passes_wsgiref_validator(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        data = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        line = stream.readline()
        environ["wsgi.errors"].write("validated\n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [data, line, b"".join(stream.readlines())]

    adapter = adapt(validator(app))  # type: ignore[arg-type]
    assert serve(adapter, http_scope(query_string=b"q=1")).status == 200
    headers = [(b"host", b"h"), (b"content-length", b"4"), (b"content-type", b"text/plain")]
    scope = http_scope("/post", method="POST", headers=headers)
    receive = Receive(body(b"ab", more=True), body(b"cd\nxy", more=True), body(b"z\n"))
    send = serve(adapter, scope, receive)
    assert (send.status, send.body) == (200, b"abcd\nxyz\n")


def test_script_name_and_path_info_split(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    environ: dict[str, Any] = {}
    scope = http_scope(
        "/api/caf\u00e9/x y",
        root_path="/api",
        raw_path=b"/api/caf%C3%A9/x%20y",
        query_string=b"a=1&b=%20",
    )
    serve(adapt(capture(environ)), scope)
    assert environ["SCRIPT_NAME"] == "/api"
    assert environ["PATH_INFO"] == "/caf\u00c3\u00a9/x y"  # UTF-8 bytes as latin-1
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/x y"
    assert environ["QUERY_STRING"] == "a=1&b=%20"
    assert environ["RAW_URI"] == environ["REQUEST_URI"] == "/api/caf%C3%A9/x%20y?a=1&b=%20"
    assert environ["wsgi.input_terminated"] is True
    assert environ["asgi.scope"] is scope


def test_environ_headers_and_addresses() -> None:
    headers = [
        (b"host", b"example.org:8443"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"accept", b"text/html"),
        (b"accept", b"*/*"),
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
        (b"x_user", b"spoofed"),
        (b"x-user", b"real"),
    ]
    scope = http_scope(headers=headers, server=None, client=None, scheme="https")
    environ = build_environ(scope, ErrorStream("t"))
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_ACCEPT"] == "text/html,*/*"
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/json", "2")
    assert "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_X_USER"] == "real"  # the underscore spelling is dropped
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8443")
    assert "REMOTE_ADDR" not in environ
    bare = build_environ(http_scope(headers=[], server=None), ErrorStream("t"))
    assert (bare["SERVER_NAME"], bare["SERVER_PORT"]) == ("localhost", "80")
    assert (bare["REMOTE_ADDR"], bare["REMOTE_PORT"]) == ("127.0.0.1", "50000")
    assert bare["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_environ_headers_are_mapped_the_same_on_every_request() -> None:
    # Field names are remembered between requests (a bounded table): the second request
    # must map exactly as the first, dropped names included, and a flood of distinct
    # names must neither grow memory without bound nor change how later names map.
    headers = [(b"x_user", b"spoofed"), (b"x-user", b"real"), (b"content-type", b"a/b")]
    for _ in range(2):
        environ = build_environ(http_scope(headers=headers), ErrorStream("t"))
        assert environ["HTTP_X_USER"] == "real" and environ["CONTENT_TYPE"] == "a/b"
    flood = [(b"x-flood-%d" % i, b"1") for i in range(5000)]
    environ = build_environ(http_scope(headers=[*flood, (b"x-late", b"2")]), ErrorStream("t"))
    assert environ["HTTP_X_FLOOD_4999"] == "1" and environ["HTTP_X_LATE"] == "2"
    assert len(wsgi_environ._ENVIRON_KEYS) <= wsgi_environ._KNOWN_FIELD_NAMES


def test_errors_stream_logs_with_mount_name(caplog: pytest.LogCaptureFixture) -> None:
    stream = ErrorStream("legacy")
    stream.write("something broke\n")
    stream.writelines(["one\n", "\n"])
    stream.flush()
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.error"]
    assert messages == ["wsgi[legacy]: something broke", "wsgi[legacy]: one"]


def test_only_http_scopes(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    with pytest.raises(ValueError, match="serves only HTTP"):
        serve(adapt(hello), {"type": "websocket", "path": "/"})


# ------------------------------------------------------------------------ request body


def test_streaming_body_read_readline_iteration(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        seen.append(stream.read(3))
        seen.append(stream.readline())
        seen.append(stream.readline(2))
        seen.append(list(stream))
        seen.append(stream.read())
        seen.append(environ["wsgi.input_terminated"])
        start_response("200 OK", [])
        return []

    receive = Receive(
        body(b"line1\nli", more=True),
        body(b"ne2\nrest", more=True),
        body(b"", more=True),
        body(b"\nlast"),
    )
    headers = [(b"transfer-encoding", b"chunked")]
    serve(adapt(app), http_scope(method="POST", headers=headers), receive)
    assert seen == [b"lin", b"e1\n", b"li", [b"ne2\n", b"rest\n", b"last"], b"", True]
    assert receive.calls == 4


def test_complete_body_costs_one_handoff_each_way(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    receive_calls_at_start: list[int] = []
    receive = Receive()

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        receive_calls_at_start.append(receive.calls)
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    adapter = adapt(app)

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        wakeups: list[int] = []
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            wakeups[-1] += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
        for _ in range(20):
            wakeups.append(0)
            receive.items.append(body(b"payload"))
            send = Send()
            await adapter(http_scope(method="POST"), receive, send)
            assert [m["type"] for m in send.messages] == [
                "http.response.start",
                "http.response.body",
            ]  # start + one body carrying the end: messages were combined
            assert send.body == b"payload"
        return wakeups

    wakeups = asyncio.run(main())
    # The body was read on the loop before the thread started, and the thread woke
    # the loop at most once (a round trip per receive/send would need several).
    assert receive_calls_at_start == list(range(1, 21))
    assert max(wakeups) <= 1


def test_expect_100_continue_reads_only_when_the_app_asks(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    receive = Receive(body(b"hello"))
    calls_before_read: list[int] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls_before_read.append(receive.calls)
        data = environ["wsgi.input"].read(5)
        start_response("200 OK", [])
        return [data]

    headers = [(b"expect", b"100-continue"), (b"content-length", b"5")]
    send = serve(adapt(app), http_scope(method="POST", headers=headers), receive)
    assert calls_before_read == [0]
    assert send.body == b"hello"
    assert receive.calls == 1


def test_a_body_still_arriving_within_the_buffer_holds_no_thread() -> None:
    """Issue 13, point 6: a small body that trickles in is read on the loop, so the
    mount's only thread stays free for others, and the app gets the whole body."""

    def echo(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    async def main() -> tuple[Send, Send]:
        rest_sent = asyncio.Event()  # the trickling client sends the rest of its body
        parts = [body(b"first,", more=True), body(b"last")]

        async def trickle() -> Message:
            if len(parts) == 1:
                await rest_sent.wait()
            return parts.pop(0)

        adapter = WSGIAdapter(echo, 1, "one", body_buffer_bytes=1024)  # type: ignore[arg-type]
        try:
            slow, fast = Send(), Send()
            scope = http_scope(method="POST", headers=[(b"content-length", b"10")])
            uploading = asyncio.create_task(adapter(scope, trickle, slow))
            await asyncio.wait_for(adapter(http_scope(), Receive(body(b"")), fast), WAIT_S)
            assert not uploading.done()
            rest_sent.set()
            await asyncio.wait_for(uploading, WAIT_S)
            return slow, fast
        finally:
            adapter.close()

    slow, fast = asyncio.run(main())
    assert fast.status == 200
    assert slow.body == b"first,last"


def test_a_body_past_the_buffer_streams_into_the_thread() -> None:
    """Past `body_buffer_bytes` (declared or counted) the app reads as the body comes."""
    calls_at_start: list[int] = []

    def echo(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls_at_start.append(receive.calls)
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    adapter = WSGIAdapter(echo, 1, "one", body_buffer_bytes=4)  # type: ignore[arg-type]
    try:
        receive = Receive(body(b"ab", more=True), body(b"cd", more=True), body(b"ef"))
        chunked = [(b"transfer-encoding", b"chunked")]
        send = serve(adapter, http_scope(method="POST", headers=chunked), receive)
        assert send.body == b"abcdef"
        receive = Receive(body(b"ab", more=True), body(b"cd", more=True), body(b"ef"))
        declared = [(b"content-length", b"6")]
        send = serve(adapter, http_scope(method="POST", headers=declared), receive)
        assert send.body == b"abcdef"
    finally:
        adapter.close()
    # Counted: the loop read until it held more than 4 bytes; declared: only the first.
    assert calls_at_start == [3, 1]


def test_body_too_large_propagates_through_the_app(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    seen: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except Exception as exc:
            seen.append(exc)
            raise
        raise AssertionError("read() should have raised")

    receive = Receive(body(b"x" * 10, more=True), RequestBodyTooLarge("body over 16 bytes"))
    scope = http_scope(method="POST", headers=[(b"transfer-encoding", b"chunked")])
    with pytest.raises(RequestBodyTooLarge) as info:
        serve(adapt(app), scope, receive)
    assert info.value.status == 413
    assert seen == [info.value]


def test_disconnect_while_reading_body(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    seen: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except ClientDisconnected as exc:
            seen.append(exc)
            raise
        return []

    receive = Receive(body(b"x", more=True), {"type": "http.disconnect"})
    send = serve(adapt(app), http_scope(method="POST"), receive)  # returns quietly
    assert send.messages == []
    assert len(seen) == 1


# ---------------------------------------------------------------------------- response


def test_close_called_on_success(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    result = Closing([b"a", b"b"])

    def app(environ: dict[str, Any], start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return result

    assert serve(adapt(app), http_scope()).body == b"ab"
    assert result.closed.wait(WAIT_S)


def test_close_called_when_iteration_fails(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("iteration failed")

    result = Closing(failing())

    def app(environ: dict[str, Any], start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return result

    adapter = adapt(app)
    send = Send()
    with pytest.raises(RuntimeError, match="iteration failed"):
        asyncio.run(adapter(http_scope(), Receive(body(b"")), send))
    assert send.status == 200  # the response had started; the server closes the connection
    assert result.closed.wait(WAIT_S)


def test_close_called_and_quiet_return_on_client_disconnect(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    produced: list[int] = []
    chunk = bytes(64 * 1024)

    def endless() -> Iterator[bytes]:
        for i in range(1000):  # 64 MiB if nothing stopped it
            produced.append(i)
            yield chunk

    result = Closing(endless())

    def app(environ: dict[str, Any], start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return result

    send = Send(disconnect_on_body=True)
    asyncio.run(adapt(app)(http_scope(), Receive(body(b"")), send))
    assert result.closed.wait(WAIT_S)
    assert len(produced) < 1000  # the thread stopped (and the channel bound held it)
    assert [m["type"] for m in send.messages] == ["http.response.start"]


def test_exception_before_start_is_reraised_on_the_loop(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    boom = ValueError("boom")

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        raise boom

    send = Send()
    with pytest.raises(ValueError) as info:
        asyncio.run(adapt(app)(http_scope(), Receive(body(b"")), send))
    assert info.value is boom
    assert send.messages == []


def test_headers_wait_for_data_so_exc_info_can_replace_them(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("X-First", "1")])
        yield b""  # not data: the headers must not go out yet (PEP 3333)
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        yield b"error page"

    send = serve(adapt(app), http_scope())
    assert send.status == 500
    assert send.messages[0]["headers"] == [(b"x-error", b"1")]
    assert send.body == b"error page"


def test_exc_info_after_headers_sent_reraises(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"

    send = Send()
    with pytest.raises(KeyError, match="late"):
        asyncio.run(adapt(app)(http_scope(), Receive(body(b"")), send))
    assert send.status == 200
    assert send.body == b"partial"


def test_start_response_twice_without_exc_info_fails(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    with pytest.raises(RuntimeError, match="second time"):
        serve(adapt(app), http_scope())


def test_write_callable(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("201 Created", [("Content-Type", "text/plain")])
        write(b"hello ")
        return [b"world"]

    send = serve(adapt(app), http_scope())
    assert send.status == 201
    assert send.messages[0]["headers"] == [(b"content-type", b"text/plain")]
    assert send.body == b"hello world"
    assert send.bodies[-1]["more_body"] is False


def test_file_wrapper(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    class File(io.BytesIO):
        closed_by_server = False

        def close(self) -> None:
            File.closed_by_server = True
            super().close()

    data = bytes(range(256)) * 1000

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](File(data), 8192)
        return wrapper

    send = serve(adapt(app), http_scope())
    assert send.body == data
    assert File.closed_by_server


def test_generator_streams_several_body_messages(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    arrived = {name: threading.Event() for name in (b"a", b"b")}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"a"
        assert arrived[b"a"].wait(WAIT_S)  # each chunk goes out before the next is made
        yield b"b"
        assert arrived[b"b"].wait(WAIT_S)
        yield b"c"

    send = Send()
    send.on_body = lambda data: arrived[data].set() if data in arrived else None
    asyncio.run(adapt(app)(http_scope(), Receive(body(b"")), send))
    bodies = send.bodies
    assert [m["body"] for m in bodies[:2]] == [b"a", b"b"]
    assert all(m["more_body"] for m in bodies[:-1])
    assert bodies[-1]["more_body"] is False
    assert send.body == b"abc"


def test_large_streamed_body_arrives_whole_and_in_order(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    chunks = [bytes([i]) * 50_000 for i in range(40)]  # 2 MB, well over the high-water mark

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield from chunks

    assert serve(adapt(app), http_scope()).body == b"".join(chunks)


def test_loop_keeps_running_while_the_app_blocks(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    release = threading.Event()
    released_in_time: list[bool] = []

    async def main() -> Send:
        loop = asyncio.get_running_loop()
        entered = asyncio.Event()

        def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
            loop.call_soon_threadsafe(entered.set)
            released_in_time.append(release.wait(WAIT_S))  # the app blocks its thread
            start_response("200 OK", [])
            return [b"done"]

        send = Send()
        task = asyncio.create_task(adapt(app)(http_scope(), Receive(body(b"")), send))
        await asyncio.wait_for(entered.wait(), WAIT_S)
        ticks = 0
        for _ in range(10):  # the loop is free: other coroutines keep running
            await asyncio.sleep(0)
            ticks += 1
        release.set()  # only reachable if the loop was not blocked by the app
        await asyncio.wait_for(task, WAIT_S)
        assert ticks == 10
        return send

    send = asyncio.run(main())
    assert released_in_time == [True]
    assert send.body == b"done"


def test_call_cancelled_while_queued_never_runs_the_app() -> None:
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        entered = asyncio.Event()

        def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
            ran.append(environ["PATH_INFO"])
            if environ["PATH_INFO"] == "/busy":
                loop.call_soon_threadsafe(entered.set)
                release.wait(WAIT_S)
            start_response("200 OK", [])
            return []

        adapter = WSGIAdapter(app, 1, "one")  # type: ignore[arg-type]
        try:
            busy = asyncio.create_task(adapter(http_scope("/busy"), Receive(body(b"")), Send()))
            await asyncio.wait_for(entered.wait(), WAIT_S)
            queued = asyncio.create_task(adapter(http_scope("/queued"), Receive(body(b"")), Send()))
            await asyncio.sleep(0)  # one loop step: `queued` has submitted and now waits
            queued.cancel()
            await asyncio.gather(queued, return_exceptions=True)
            release.set()
            await busy
            # One thread, first in first out: when /after is done, /queued was dequeued.
            await adapter(http_scope("/after"), Receive(body(b"")), Send())
        finally:
            adapter.close()

    asyncio.run(main())
    assert ran == ["/busy", "/after"]


def test_a_burst_submitted_in_one_loop_turn_gets_its_threads() -> None:
    """Issue 13, point 5: six calls submitted back to back, as one loop turn submits
    them, to a pool of 8 with one idle thread run on six threads at once; they must not
    all queue behind the one idle thread while the pool may grow."""
    burst = 6
    pool = ThreadPool(8, "burst")
    try:
        warmed = threading.Event()
        pool.submit(warmed.set)
        assert warmed.wait(WAIT_S)
        wait_until(lambda: pool.idle_threads == 1, WAIT_S)
        # Each call waits for all the others: only calls on separate threads can meet.
        together = threading.Barrier(burst, timeout=WAIT_S)
        threads: set[int] = set()
        finished = threading.Semaphore(0)

        def call() -> None:
            threads.add(threading.get_ident())
            try:
                together.wait()
            except threading.BrokenBarrierError:
                pass
            finally:
                finished.release()

        async def one_loop_turn() -> None:  # as a mount's requests arrive together
            for _ in range(burst):
                pool.submit(call)

        asyncio.run(one_loop_turn())
        for _ in range(burst):
            assert finished.acquire(timeout=2 * WAIT_S)
        assert not together.broken
        assert len(threads) == burst
    finally:
        pool.close()


# -------------------------------------------------------------------- real frameworks


def test_flask_url_for_under_root_path_and_chunked_post(
    adapt: Callable[[WSGIApp], WSGIAdapter],
) -> None:
    from flask import Flask, request, url_for

    flask_app = Flask(__name__)

    @flask_app.get("/where")
    def where() -> str:
        return url_for("where")

    @flask_app.post("/upload")
    def upload() -> bytes:
        return request.get_data()

    adapter = adapt(flask_app)
    send = serve(adapter, http_scope("/flask/where", root_path="/flask"))
    assert (send.status, send.body) == (200, b"/flask/where")

    headers = [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")]
    scope = http_scope("/flask/upload", root_path="/flask", method="POST", headers=headers)
    receive = Receive(body(b"abc", more=True), body(b"def", more=True), body(b"ghi"))
    send = serve(adapter, scope, receive)
    assert (send.status, send.body) == (200, b"abcdefghi")


def test_django_reverse_under_root_path(adapt: Callable[[WSGIApp], WSGIAdapter]) -> None:
    import types

    django_wsgi_handler()  # settings configured once, apps ready
    from django.http import HttpRequest, HttpResponse
    from django.test.utils import override_settings
    from django.urls import path, reverse

    def where(request: HttpRequest) -> HttpResponse:
        return HttpResponse(reverse("where"))

    urls = types.ModuleType("gwtest_django_urls")
    urls.urlpatterns = [path("where/", where, name="where")]  # type: ignore[attr-defined]
    sys.modules[urls.__name__] = urls
    with override_settings(ROOT_URLCONF=urls.__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=[]):
        from django.core.handlers.wsgi import WSGIHandler

        handler = adapt(WSGIHandler())
        send = serve(handler, http_scope("/django/where/", root_path="/django"))
    assert (send.status, send.body) == (200, b"/django/where/")


# ------------------------------------- a declared interface the app contradicts (point 10)


class SyncASGIMiddleware:
    """An ASGI 3 app whose __call__ is a plain function returning the awaitable."""

    def __call__(self, scope: Message, receive: Any, send: Any) -> Any:
        return asgi3_function(scope, receive, send)


def wsgi_with_optional(environ: Any, start_response: Any = None) -> list[bytes]:
    return []


def asgi3_with_optional(scope: Any, receive: Any, send: Any = None) -> None: ...


def test_interface_mismatch_is_certain_for_real_frameworks() -> None:
    from fastapi import FastAPI
    from flask import Flask
    from starlette.applications import Starlette

    for wsgi_app in (Flask(__name__), django_wsgi_handler(), hello):
        assert "(environ, start_response)" in str(interface_mismatch(wsgi_app, Interface.ASGI))
        assert interface_mismatch(wsgi_app, Interface.WSGI) is None
    for asgi_app in (FastAPI(), Starlette(), asgi3_function):
        assert "coroutine" in str(interface_mismatch(asgi_app, Interface.WSGI))
        assert interface_mismatch(asgi_app, Interface.ASGI) is None
    assert "(scope, receive, send)" in str(interface_mismatch(SyncASGIMiddleware(), Interface.WSGI))
    assert "ASGI 2" in str(interface_mismatch(asgi2_function, Interface.WSGI))
    assert "ASGI 2" in str(interface_mismatch(ASGI2App, Interface.WSGI))


def test_interface_mismatch_keeps_the_declared_interface_when_unsure() -> None:
    def anything(*args: Any) -> None: ...

    for interface in (Interface.ASGI, Interface.WSGI):
        assert interface_mismatch(anything, interface) is None
        assert interface_mismatch(print, interface) is None  # no readable signature
    # Either call works on these, so neither declaration is certainly wrong.
    assert interface_mismatch(wsgi_with_optional, Interface.WSGI) is None
    assert interface_mismatch(asgi3_with_optional, Interface.ASGI) is None
    assert interface_mismatch(asgi3_with_optional, Interface.WSGI) is None


def test_load_refuses_a_declared_interface_the_app_contradicts(
    modules: Callable[..., None],
) -> None:
    modules("gwtest_good", GOOD)
    with pytest.raises(InterfaceMismatch) as info:
        load_app("gwtest_good:app", Interface.ASGI, 3, "x")
    message = str(info.value)
    assert "'gwtest_good:app'" in message and "looks like a WSGI app" in message
    assert 'interface = "asgi"' in message and 'set interface = "wsgi"' in message


def test_a_misspelt_attribute_suggests_the_close_names(modules: Callable[..., None]) -> None:
    modules("gwtest_good", GOOD)
    with pytest.raises(AppLoadError, match=r"did you mean 'app'\?") as info:
        import_from_string("gwtest_good:ap")
    assert "gwtest_good.py" in str(info.value)  # the file that was found
    with pytest.raises(AppLoadError, match="did you mean 'app'") as info:
        import_from_string("gwtest_good:Holder.appp")
    with pytest.raises(AppLoadError) as info:
        import_from_string("gwtest_good:zzzzzz")
    assert "did you mean" not in str(info.value)
