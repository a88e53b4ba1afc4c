"""The house plan (DESIGN §3), checked: imports point downward only.

Every module under gateway/ and adapters/ is parsed with `ast` (nothing is imported) and
each import is held against three tables:

1. LAYERS: which gateway/adapters modules a module may import. A module with no row
   fails, so a new module cannot slip in without a decision about its place.
2. EVENT_LOOP_FREE: layers 0 and 1 import no event loop, sockets, threads or signals, so
   their logic is tested with bytes in, bytes out. adapters/ hosts the WSGI thread pool
   and may use asyncio and threads (never sockets or signals).
3. THIRD_PARTY_OWNERS: each third-party library is wrapped in one place, where its
   exceptions are translated. An unlisted third-party import fails.

Imports under `if TYPE_CHECKING:` count too: a type-only dependency is still a dependency.
Departure from the DESIGN table, decided by the lead: `gateway/lifespan.py` sits at
layer 2 (asyncio tasks for the lifespan fan-out) so that `router` stays free of asyncio.
Modules the table does not name: `gateway/cycle.py` and `gateway/state.py` (layer 2,
split out of connection: one request's ASGI cycle, and what a worker's connections
share), `gateway/proxy.py` (layer 1: proxy headers are data, so
config can check the trust list with it) and `gateway/tls.py` (layer 2: the SSLContext
is I/O setup, built from config, used by the worker and the connection).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway",)
# The repository's adapters/ folder is installed as gateway.adapters (DESIGN §3: nothing
# generic lands in site-packages); gateway/adapters is a link to it.
SOURCE_FOLDERS = {"gateway": "gateway", "adapters": "gateway.adapters"}

# module pattern -> gateway/adapters modules it may import. "x.*" means x and everything
# under it; a plain name means that module only ("gateway" is the package __init__, for
# __version__, and grants nothing beneath it).
LAYERS: dict[str, tuple[str, ...]] = {
    # The package exposes gateway.run and gateway.TestServer, imported on first use.
    "gateway": ("gateway.api",),
    "gateway.errors": (),
    "gateway.asgi": (),
    "gateway.bind": (),
    "gateway.config": (
        "gateway.access_format",
        "gateway.bind",
        "gateway.checks",
        "gateway.errors",
        "gateway.links",
    ),
    # Layer 1, beside config, which checks access_log_format with it: the access log's
    # entry and the format that renders it; the cycles log entries.
    "gateway.access_format": ("gateway.asgi", "gateway.checks"),
    # Layer 1, split out of config: the links between mounts (names, loops), as data.
    "gateway.links": ("gateway.errors",),
    # Layer 1, split out of config: the validators of the mount file's values.
    "gateway.checks": ("gateway.bind", "gateway.proxy"),
    # Layer 1: proxy headers read as data (the trust list, the fields); config checks
    # forwarded_allow_ips with it, the connection applies it to the scope.
    "gateway.proxy": (),
    "gateway.router": ("gateway.asgi", "gateway.errors"),
    # Layer 1 beside the router: fallback and canary wrap a mount's app in its rules.
    "gateway.targets": ("gateway.asgi", "gateway.errors", "gateway.router"),
    # Layer 1: comparing a shadow's answer with the primary's, as plain data.
    "gateway.compare": ("gateway.asgi",),
    # Layer 2: the shadow rule, whose copies are tasks of their own (hence not layer 1
    # with the other rules), with its pool and mismatch log; the worker builds it.
    "gateway.shadow": (
        "gateway.asgi",
        "gateway.compare",
        "gateway.config",
        "gateway.errors",
        "gateway.router",
        "gateway.targets",
    ),
    "gateway.http.*": ("gateway.asgi", "gateway.errors", "gateway.http.*"),
    "gateway.adapters.*": ("gateway.asgi", "gateway.errors", "gateway.adapters.*"),
    "gateway.lifespan": ("gateway.asgi", "gateway.errors"),
    "gateway.connection": (
        "gateway.http.*",
        "gateway.cycle",
        "gateway.state",
        "gateway.websocket",
        "gateway.asgi",
        "gateway.errors",
        "gateway.proxy",
        "gateway.tls",
    ),
    # Layer 2 beside connection, split out of it: one HTTP request's ASGI cycle, which
    # reaches the transport only through its connection.
    "gateway.cycle": ("gateway.access_format", "gateway.asgi", "gateway.errors"),
    # Layer 2 beside connection: what a worker's connections share, and the sweep.
    "gateway.state": (
        "gateway.http.*",
        "gateway.asgi",
        "gateway.config",
        "gateway.proxy",
        "gateway.websocket",
    ),
    # Layer 2 beside connection: one WebSocket's ASGI cycle on a connection it took over.
    "gateway.websocket": (
        "gateway.http.*",
        "gateway.access_format",
        "gateway.asgi",
        "gateway.errors",
        "gateway.config",
    ),
    "gateway.worker": (
        "gateway.targets",
        "gateway.shadow",
        "gateway.health",
        "gateway.connection",
        "gateway.state",
        "gateway.router",
        "gateway.config",
        "gateway.adapters.*",
        "gateway.lifespan",
        "gateway.asgi",
        "gateway.errors",
        "gateway.tls",
        "gateway.metrics",
    ),
    # Layer 2, beside the worker that wraps each mount's app in its middleware: metrics
    # (prometheus_client's only importer). Its endpoint answers like the health one, the
    # supervisor keeps the shared directory with it, and `gateway status` parses with it.
    "gateway.metrics": (
        "gateway.asgi",
        "gateway.config",
        "gateway.errors",
        "gateway.health",
        "gateway.metric_files",
    ),
    # Split out of metrics: room on disk for its multiprocess files (no prometheus_client).
    "gateway.metric_files": ("gateway.errors",),
    # Layer 5 beside the CLI: `gateway status`, a client of a running server's metrics.
    "gateway.status": ("gateway.config", "gateway.errors", "gateway.metrics"),
    "gateway.sockets": ("gateway.config", "gateway.errors"),
    # Layer 2 beside connection: the worker's SSLContext, read from the TLS settings (the
    # supervisor and `gateway check` build one too, to fail before serving), and the
    # ASGI TLS extension the connection puts in each scope.
    "gateway.tls": ("gateway.config", "gateway.errors"),
    "gateway.supervisor": (
        "gateway.children",
        "gateway.hooks",
        "gateway.pidfile",
        "gateway.privileges",
        "gateway.wakeup",
        "gateway.config",
        "gateway.errors",
        "gateway.sockets",
        "gateway.tls",
        "gateway.worker",
        "gateway.metrics",
    ),
    # Layer 4 with the supervisor, split out of it: forking a worker and its record.
    "gateway.children": ("gateway.config", "gateway.errors", "gateway.hooks", "gateway.worker"),
    # Layer 4 with the supervisor: the site's hooks module, imported by reference, and
    # what its functions are told (gateway/hooks.py).
    "gateway.hooks": ("gateway.config", "gateway.errors"),
    # Layer 4 with the supervisor: the pid file, and dropping root after binding.
    "gateway.pidfile": ("gateway.errors",),
    "gateway.privileges": ("gateway.config", "gateway.errors"),
    # The development reloader is a parent process like the supervisor: it binds once and
    # runs the server as a child it restarts (the child imports the apps, never it).
    "gateway.reload": ("gateway.config", "gateway.errors", "gateway.sockets", "gateway.wakeup"),
    # Signals queued on a pipe, for the parent processes (supervisor, reloader).
    "gateway.wakeup": (),
    # Layer 1, like the router: an ASGI app answered before routing; no event loop.
    "gateway.health": ("gateway.asgi", "gateway.errors", "gateway.router"),
    "gateway.cli": (
        "gateway",
        "gateway.logs",
        "gateway.config",
        "gateway.reload",
        "gateway.supervisor",
        "gateway.tls",
        "gateway.worker",
        "gateway.errors",
        "gateway.metrics",
        "gateway.status",
    ),
    # Beside the CLI, split out of it: the process's logging setup (handlers, JSON lines,
    # --log-config), made once before serving.
    "gateway.logs": ("gateway.access_format", "gateway.config", "gateway.errors"),
    "gateway.__main__": ("gateway.cli",),
    # Layer 4 with the CLI: gateway.run() and TestServer, serving from Python.
    "gateway.api": (
        "gateway",
        "gateway.config",
        "gateway.logs",
        "gateway.errors",
        "gateway.reload",
        "gateway.supervisor",
        "gateway.worker",
    ),
}

# Concurrency and I/O modules; `concurrent`, `_thread`, `selectors` and `multiprocessing`
# are listed too because they are the same thing by another name.
EVENT_LOOP = frozenset(
    {"asyncio", "socket", "threading", "signal", "uvloop"}
    | {"concurrent", "_thread", "selectors", "multiprocessing"}
)
# Module pattern -> which of EVENT_LOOP it may still use. Modules not listed: all of them
# (uvloop is held to its one owner by THIRD_PARTY_OWNERS).
EVENT_LOOP_FREE: dict[str, frozenset[str]] = {
    "gateway": frozenset(),  # imported by every module: it must be the lightest of all
    "gateway.errors": frozenset(),
    "gateway.asgi": frozenset(),
    "gateway.config": frozenset(),
    "gateway.checks": frozenset(),
    "gateway.access_format": frozenset(),
    "gateway.bind": frozenset(),
    "gateway.proxy": frozenset(),
    "gateway.router": frozenset(),
    "gateway.targets": frozenset(),
    "gateway.compare": frozenset(),
    "gateway.links": frozenset(),
    "gateway.health": frozenset(),
    "gateway.http.*": frozenset(),
    "gateway.adapters.*": frozenset({"asyncio", "threading", "concurrent", "_thread"}),
}

THIRD_PARTY_OWNERS: dict[str, str] = {
    "h11": "gateway.http.*",
    "httptools": "gateway.http.*",
    "wsproto": "gateway.http.*",
    "a2wsgi": "gateway.adapters.*",
    "asgiref": "gateway.adapters.*",
    "uvloop": "gateway.worker",
    "watchfiles": "gateway.reload",
    "prometheus_client": "gateway.metrics",
    "yaml": "gateway.logs",  # optional: a --log-config file in YAML
}


def matches(pattern: str, module: str) -> bool:
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return module == base or module.startswith(base + ".")
    return module == pattern


def lookup(table: Mapping[str, object], module: str) -> str | None:
    """The table pattern that governs `module`, or None."""
    return next((pattern for pattern in table if matches(pattern, module)), None)


def module_name(path: Path) -> str:
    folder, *parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([SOURCE_FOLDERS[folder], *parts])


def discover() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.relative_to(ROOT / folder).parts[0] != "adapters":  # the link
                found[module_name(path)] = path
    return found


def imported_modules(module: str, source: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Every module `source` imports, relative imports resolved to absolute names.

    For `from pkg import name`, the target is `pkg.name` when that is a module of ours,
    otherwise `pkg` itself (the name is an attribute of it).
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(package, node.module, node.level)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def resolve(package: str, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def violations(
    module: str, source: str, is_package: bool = False, known: set[str] | None = None
) -> list[str]:
    """What is wrong with the imports of `module`; empty when it keeps the house rules."""
    rule = lookup(LAYERS, module)
    if rule is None:
        return [f"{module}: not in LAYERS; give it a row (DESIGN §3)"]
    problems = []
    for target in set(imported_modules(module, source, is_package, known or set())):
        problem = check_import(module, rule, target)
        if problem:
            problems.append(f"{module} imports {target}: {problem}")
    return sorted(problems)


def check_import(module: str, rule: str, target: str) -> str | None:
    top = target.partition(".")[0]
    if top in PACKAGES:
        allowed = target == module or any(matches(p, target) for p in LAYERS[rule])
        return None if allowed else f"not allowed by LAYERS[{rule!r}] = {LAYERS[rule]}"
    free = lookup(EVENT_LOOP_FREE, module)
    if free is not None and top in EVENT_LOOP and top not in EVENT_LOOP_FREE[free]:
        return "layers 0 and 1 stay free of event loops, sockets, threads and signals"
    if top in sys.stdlib_module_names:
        return None
    owner = THIRD_PARTY_OWNERS.get(top)
    if owner is None:
        return "third-party library with no owner in THIRD_PARTY_OWNERS"
    return None if matches(owner, module) else f"third-party; only {owner} may import it"


# --- the real tree -------------------------------------------------------------------------

MODULES = discover()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_keeps_the_house_rules(module: str) -> None:
    path = MODULES[module]
    source = path.read_text(encoding="utf-8")
    assert violations(module, source, path.name == "__init__.py", set(MODULES)) == []


def test_the_tree_was_found() -> None:
    assert {"gateway", "gateway.errors", "gateway.asgi"} <= set(MODULES)


def test_every_row_names_modules_in_our_packages() -> None:
    patterns = [*LAYERS, *EVENT_LOOP_FREE, *THIRD_PARTY_OWNERS.values()]
    patterns += [p for allowed in LAYERS.values() for p in allowed]
    assert all(p.partition(".")[0] in PACKAGES for p in patterns)
    assert set(EVENT_LOOP_FREE) <= set(LAYERS)


# --- the checker itself: it must catch what it claims to catch -----------------------------


@pytest.mark.parametrize(
    ("module", "source", "fragment"),
    [
        ("gateway.config", "import asyncio", "free of event loops"),
        ("gateway.router", "from threading import Lock", "free of event loops"),
        ("gateway.http.session", "import concurrent.futures", "free of event loops"),
        ("gateway", "import signal", "free of event loops"),
        ("gateway.adapters.wsgi", "import socket", "free of event loops"),
        ("gateway.router", "from gateway.config import MountConfig", "not allowed"),
        ("gateway.router", "from gateway import config", "not allowed"),
        ("gateway.config", "from . import router", "not allowed"),
        ("gateway.http.session", "from ..connection import Connection", "not allowed"),
        ("gateway.errors", "import gateway.asgi", "not allowed"),
        ("gateway.connection", "from gateway import worker", "not allowed"),
        ("gateway.connection", "import gateway.adapters.wsgi", "not allowed"),
        ("gateway.adapters.wsgi", "from gateway.router import Router", "not allowed"),
        ("gateway.lifespan", "from gateway.router import Router", "not allowed"),
        ("gateway.cli", "from gateway.connection import Connection", "not allowed"),
        ("gateway.cli", "from gateway.adapters.wsgi import WSGIApp", "not allowed"),
        ("gateway.worker", "import adapters", "no owner"),
        ("gateway.router", "import h11", "only gateway.http.* may import it"),
        ("gateway.connection", "import wsproto.events", "only gateway.http.*"),
        ("gateway.worker", "from a2wsgi import WSGIMiddleware", "only gateway.adapters.*"),
        ("gateway.connection", "import uvloop", "only gateway.worker"),
        ("gateway.router", "import starlette", "no owner"),
        ("gateway.router", "if TYPE_CHECKING:\n    from gateway.config import X", "not allowed"),
        ("gateway.router", "def f():\n    import gateway.worker", "not allowed"),
    ],
)
def test_checker_catches(module: str, source: str, fragment: str) -> None:
    known = {
        "gateway.config",
        "gateway.router",
        "gateway.worker",
        "gateway.connection",
        "gateway.adapters.wsgi",
    }
    problems = violations(module, source, known=known)
    assert problems and all(fragment in p for p in problems), problems


def test_checker_rejects_a_module_without_a_row() -> None:
    assert violations("gateway.newthing", "") == [
        "gateway.newthing: not in LAYERS; give it a row (DESIGN §3)"
    ]
    assert violations("tools.helper", "") != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("gateway.config", "import tomllib\nfrom gateway.errors import ConfigError"),
        ("gateway.config", "from .errors import ConfigError"),
        ("gateway.http.h11_session", "import h11\nfrom gateway.http.session import Session"),
        ("gateway.http.h11_session", "from . import session\nfrom .. import asgi"),
        ("gateway.adapters.wsgi", "import asyncio\nfrom concurrent.futures import Future"),
        ("gateway.adapters.wsgi", "import a2wsgi\nfrom asgiref.compatibility import guarantee"),
        ("gateway.worker", "import uvloop\nimport asyncio\nimport gateway.adapters"),
        ("gateway.lifespan", "import asyncio\nfrom gateway.asgi import Scope"),
        ("gateway.cli", "from gateway import __version__\nfrom gateway import supervisor"),
        ("gateway.__main__", "from gateway.cli import main"),
    ],
)
def test_checker_allows(module: str, source: str) -> None:
    known = {"gateway.http.session", "gateway.supervisor", "gateway.asgi"}
    assert violations(module, source, known=known) == []


def test_relative_imports_resolve_from_a_package_init() -> None:
    targets = set(imported_modules("gateway.http", "from . import events", True, set()))
    assert targets == {"gateway.http"}
    known = {"gateway.http.events"}
    targets = set(imported_modules("gateway.http", "from . import events", True, known))
    assert targets == {"gateway.http.events"}
    assert violations("gateway.http", "from .. import config", True) != []
