"""Serving from Python: `gateway.run(...)` blocks like `gateway serve`, and `TestServer`
serves in a background thread for a user's own tests (issue 14, point 4).

Rules:
1. One path: every form ends in a Config made by gateway/config/loader.py (a mount file, one
   app, or [[mount]] mappings) with the keyword settings as command-line overrides, so
   the validation and the errors (ConfigError, StartupError) are the CLI's. Nothing is
   printed; errors are raised.
2. Objects by reference: an app *object* (not a "module:attribute" string) is
   registered under a reference in APPS_MODULE, an in-memory module, and loaded from
   there like any other: the loader is unchanged, and forked workers inherit the module.
   `reload` re-executes the program, which has no such module, so it needs references.
3. TestServer binds 127.0.0.1:0 itself and serves it with the worker's own code on a
   worker's loop (uvloop) in a thread; `start` returns once the apps' lifespan startup is done,
   `stop` is the graceful stop SIGTERM makes, bounded by graceful_timeout.
4. Layer 4, like the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import sys
import threading
import types
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.config.loader import Config, app_config, load_config, mapping_config
from gateway.config.options import bind_from_host_port
from gateway.errors import ConfigError
from gateway.logs import configure_logging
from gateway.process import reload
from gateway.process.launcher import serve
from gateway.process.mounts import load_mounts
from gateway.process.worker import Worker, new_event_loop

APPS_MODULE = "gateway_run_apps"
"""Where app objects given to `run` and `TestServer` are registered
(rule "objects by reference")."""
RUN = "gateway.run()"
"""How a config made from [[mount]] mappings is named in errors."""
# How long `TestServer.start` waits for the apps to import and start: far above a real
# app's startup, so only a hung lifespan startup reaches it.
START_TIMEOUT_S = 60.0
# A test server listens for one test's clients; 128 is more than a test opens at once.
TEST_BACKLOG = 128
_names = itertools.count(1)


def run(
    target: str | os.PathLike[str] | object | None = None,
    *,
    mounts: Sequence[Mapping[str, object]] | None = None,
    host: str | None = None,
    port: int | None = None,
    **settings: object,
) -> int:
    """Serve until SIGTERM or SIGINT, as `gateway serve` does; return the exit status.

    `target` is a mount file, an app reference ("main:app"), or an app object; or give
    `mounts`, a list of [[mount]] tables as dicts (their `app` may be an object too).
    `host`/`port` make one bind address, as the flags do; `settings` are [server] keys
    (`workers=4`, `root_path="/app"`) and, for one app, `interface` and `factory`.
    Raises ConfigError (exit status 1 on the command line) or StartupError (3).
    """
    config, overrides = build_config(target, mounts, host, port, settings)
    configure_logging(config)
    if config.server.reload:
        if _registered(config):
            reason = 'reload restarts the program: give apps as "module:attribute", not objects'
            raise ConfigError(config.path, "server", "reload", reason)
        return reload.run(config, overrides)
    return serve(config, overrides)


def build_config(
    target: str | os.PathLike[str] | object | None,
    mounts: Sequence[Mapping[str, object]] | None,
    host: str | None,
    port: int | None,
    settings: Mapping[str, object],
) -> tuple[Config, dict[str, object]]:
    """The Config of `run`'s arguments (rule "one path"), and the overrides it was made
    with."""
    name = RUN if target is None or not isinstance(target, str | os.PathLike) else os.fspath(target)
    overrides = {key: _as_toml(value) for key, value in settings.items() if value is not None}
    bind = bind_from_host_port(host, port, overrides.get("bind"), name)
    if bind is not None:
        overrides["bind"] = bind
    if (target is None) == (mounts is None):
        raise ConfigError(name, "top level", None, "give either a target or mounts, not both")
    if mounts is not None:
        return mapping_config([_with_reference(m) for m in mounts], RUN, overrides), overrides
    if isinstance(target, str | os.PathLike):
        return load_config(target, overrides), overrides
    return app_config(register(target), overrides), overrides


def _as_toml(value: object) -> object:
    """A Python value as the TOML reader would give it: tuples are arrays."""
    return list(value) if isinstance(value, tuple) else value


def _with_reference(mount: Mapping[str, object]) -> dict[str, object]:
    table = dict(mount)
    if "app" in table and not isinstance(table["app"], str):
        table["app"] = register(table["app"])
    return table


def register(app: object) -> str:
    """A "module:attribute" reference that loads `app` (rule "objects by reference")."""
    if not callable(app):
        raise TypeError(f"an app must be callable, got {type(app).__name__}")
    module = sys.modules.get(APPS_MODULE)
    if module is None:
        module = sys.modules[APPS_MODULE] = types.ModuleType(APPS_MODULE)
    attribute = f"app_{next(_names)}"
    setattr(module, attribute, app)
    return f"{APPS_MODULE}:{attribute}"


def _registered(config: Config) -> bool:
    return any(mount.app.startswith(APPS_MODULE + ":") for mount in config.mounts)


class TestServer:
    """The real server in a background thread, on 127.0.0.1 and a port of its own:

        with gateway.TestServer("gateway.toml") as server:
            httpx.get(server.url + "/api/items")

    Takes `run`'s arguments; bind, host and port are its own
    (rule "TestServer binds 127.0.0.1:0 itself").
    """

    __test__ = False  # a pytest collecting a user's tests must not take it for a test class

    def __init__(
        self,
        target: str | os.PathLike[str] | object | None = None,
        *,
        mounts: Sequence[Mapping[str, object]] | None = None,
        **settings: object,
    ) -> None:
        for key in ("bind", "host", "port", "workers"):
            if key in settings:
                raise TypeError(f"TestServer serves on its own socket in one thread: no {key}")
        self.config, _ = build_config(target, mounts, None, None, settings)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.port = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> TestServer:
        """Import the apps, bind, run their lifespan startup; return once serving."""
        mounts = load_mounts(self.config)  # an app that does not import: before binding
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(TEST_BACKLOG)
        worker = Worker(self.config, [self._sock], mounts)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._worker, self._loop = worker, new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="gateway-test-server")
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.stop()
            raise TimeoutError(f"the apps did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def _serve(self) -> None:
        assert self._loop is not None and self._worker is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._worker.serve(ready=self._ready.set))
        except BaseException as exc:  # handed to the caller's thread by start()/stop()
            self._error = exc
        finally:
            self._ready.set()
            self._loop.close()

    def stop(self) -> None:
        """Stop as SIGTERM does: in-flight requests finish, then lifespan shutdown."""
        thread, loop, worker = self._thread, self._loop, self._worker
        if thread is not None and loop is not None and worker is not None:
            # A loop already closed has stopped serving (a failed startup): nothing to ask.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(worker.request_stop)
            # The worker's drain is bounded by graceful_timeout; lifespan shutdown follows.
            thread.join()
        self._thread = None
        self._sock.close()

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
