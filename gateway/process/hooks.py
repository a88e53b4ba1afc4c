"""Server hooks: a module of the site's own (`hooks = "mysite.gateway_hooks"`) whose
functions are called at the moments gunicorn users know (README: Server hooks).

Rules:
1. Each hook is an optional module-level function of one argument: a read-only
   `ServerInfo` (in the supervisor) or `WorkerInfo` (in a worker), never the server's
   internals, so that the hooks survive changes to them. A name the module defines that
   is not callable is an error at start, not a silent no-op.
2. The module is imported once, in the parent process, after `chdir` and with
   `pythonpath` on sys.path (where the apps are looked for); forked workers inherit it.
   With `workers = 1` nothing forks: on_starting, when_ready and worker_exit run in the
   one process, post_fork and on_reload never.
3. A failing hook: a hook that fails before the server serves (the module does not
   import, on_starting or post_fork raises) stops the start with one line and exit
   status 3, like an app that fails to load. A hook that fails while the server serves
   (when_ready, on_reload, worker_exit) is logged with its traceback, and the server
   goes on: a broken notification must not take the site down.
4. Beside the supervisor, in gateway/process/ (tests/unit/test_layering.py checks the
   folder's imports); of the gateway, it imports config and errors only.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.config.loader import Config
from gateway.errors import StartupError

log = logging.getLogger("gateway.hooks")

# The hooks and where each runs (README: Server hooks).
SERVER_HOOKS = ("on_starting", "when_ready", "on_reload")  # the supervisor, a ServerInfo
WORKER_HOOKS = ("post_fork", "worker_exit")  # each worker, a WorkerInfo
HOOK_NAMES = SERVER_HOOKS + WORKER_HOOKS


class HookError(StartupError):
    """The hooks module did not import, or a hook failed before the server served
    (exit status 3: rule "a failing hook")."""


@dataclass(frozen=True)
class ServerInfo:
    """What a server hook is told: the validated settings (the new ones in on_reload)
    and the pid of the process that runs the hook (the supervisor's)."""

    config: Config
    pid: int


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker hook is told: the settings, this worker's pid and its generation
    (1 at start, one more on each reload), and whether its apps were imported before
    the fork (`preload`: then they hold whatever the parent opened at import)."""

    config: Config
    pid: int
    generation: int
    preloaded: bool


HookFunction = Callable[[ServerInfo], object] | Callable[[WorkerInfo], object]


class Hooks:
    """The hooks a module defines; `Hooks.none()` when `hooks` is not set."""

    def __init__(self, module: str, functions: Mapping[str, HookFunction]) -> None:
        self.module = module
        self._functions = dict(functions)

    @classmethod
    def none(cls) -> Hooks:
        return cls("", {})

    @classmethod
    def load(cls, config: Config) -> Hooks:
        """Import `config.server.hooks` and take its hook functions (rule "the module is
        imported once"); HookError if it does not import or names a hook that is not a
        function."""
        name = config.server.hooks
        if not name:
            return cls.none()
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise HookError(f"hooks: cannot import {name!r}: {_describe(exc)}") from exc
        functions = {}
        for hook in HOOK_NAMES:
            function = getattr(module, hook, None)
            if function is not None and not callable(function):
                raise HookError(f"hooks: {name}.{hook} is not a function")
            if function is not None:
                functions[hook] = function
        log.info("hooks from %s: %s", name, ", ".join(functions) or "none defined")
        return cls(name, functions)

    def defines(self, hook: str) -> bool:
        return hook in self._functions

    def run_before_serving(self, hook: str, info: ServerInfo | WorkerInfo) -> None:
        """Call `hook` where its failure stops the start: HookError (rule "a failing
        hook")."""
        function = self._functions.get(hook)
        if function is None:
            return
        try:
            function(info)  # type: ignore[arg-type]  # each hook gets its own kind of info
        except Exception as exc:
            raise HookError(f"hooks: {self.module}.{hook} failed: {_describe(exc)}") from exc

    def run(self, hook: str, info: ServerInfo | WorkerInfo) -> None:
        """Call `hook` while the server serves: a failure is logged, not raised (rule "a
        failing hook")."""
        function = self._functions.get(hook)
        if function is None:
            return
        try:
            function(info)  # type: ignore[arg-type]  # as in run_before_serving
        except Exception:
            log.exception("hooks: %s.%s failed; going on", self.module, hook)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
