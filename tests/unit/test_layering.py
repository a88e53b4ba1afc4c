"""The house plan (DESIGN §3), checked: imports point downward only.

Every module under gateway/ and adapters/ is parsed with `ast` (nothing is imported) and
each import is held against three tables:

1. LAYERS: which gateway/adapters packages a module may import. The rows are the
   folders of DESIGN §3, one per layer's job; a module outside every row fails, so a new
   folder cannot slip in without a decision about its place.
2. EVENT_LOOP_FREE: layers 0 and 1 import no event loop, sockets, threads or signals, so
   their logic is tested with bytes in, bytes out. adapters/ hosts the WSGI thread pool
   and may use asyncio and threads (never sockets or signals).
3. THIRD_PARTY_OWNERS: each third-party library is wrapped in one place, where its
   exceptions are translated. An unlisted third-party import fails.

Imports under `if TYPE_CHECKING:` count too: a type-only dependency is still a dependency.

Departures from the DESIGN table, decided by the lead:
- config may import gateway.http.forwarded: `forwarded_allow_ips` is checked by the
  same parser that applies it, so the trust list has one parser.
- the shadow rule (gateway.migration.shadow) may use asyncio: its copy of a request is a
  task of its own, off the primary's critical path.
- the access log's format (gateway.config.access_format) is configuration: the loader
  checks `access_log_format` with it; the server's cycles render their entries with it.
- gateway/__init__.py imports gateway.native (layer 0): GATEWAY_PURE_PYTHON=1 must
  choose the .py files before any compiled module is imported (issue 18, point 2).
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

LAYER_0 = ("gateway.errors", "gateway.asgi", "gateway.lifecycle", "gateway.native")
LAYER_1 = (
    "gateway.config.*",
    "gateway.http.*",
    "gateway.routing.*",
    "gateway.migration.*",
    "gateway.adapters.*",
)
# The command line, the status report and the Python API (layer 4).
FRONT_DOOR = ("gateway.cli", "gateway.status", "gateway.api")
# Logging set-up: it reads config only, and every serving process reopens its files.
LOGS = "gateway.logs"
EVERYTHING = (
    "gateway",
    *LAYER_0,
    *LAYER_1,
    LOGS,
    "gateway.server.*",
    "gateway.process.*",
    *FRONT_DOOR,
)

# module pattern -> gateway packages it may import. "x.*" means x and everything under
# it; a plain name means that module only ("gateway" is the package __init__, for
# __version__, and grants nothing beneath it). A package may import itself.
LAYERS: dict[str, tuple[str, ...]] = {
    # The package exposes gateway.run and gateway.TestServer, imported on first use.
    "gateway": ("gateway.api", "gateway.native"),
    "gateway.errors": (),
    "gateway.asgi": (),
    "gateway.lifecycle": (),
    "gateway.native": (),
    "gateway.config.*": (*LAYER_0, "gateway.config.*", "gateway.http.forwarded"),
    "gateway.http.*": (*LAYER_0, "gateway.http.*"),
    "gateway.routing.*": (*LAYER_0, "gateway.config.*", "gateway.routing.*"),
    "gateway.migration.*": (
        *LAYER_0,
        "gateway.config.*",
        "gateway.routing.*",
        "gateway.migration.*",
    ),
    "gateway.adapters.*": (*LAYER_0, "gateway.adapters.*"),
    "gateway.server.*": (*LAYER_0, *LAYER_1, "gateway.server.*"),
    LOGS: (*LAYER_0, "gateway.config.*"),
    "gateway.process.*": (*LAYER_0, *LAYER_1, LOGS, "gateway.server.*", "gateway.process.*"),
    **{module: EVERYTHING for module in FRONT_DOOR},
    "gateway.__main__": ("gateway.cli",),
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
    "gateway.lifecycle": frozenset(),
    "gateway.native": frozenset(),
    "gateway.config.*": frozenset(),
    "gateway.http.*": frozenset(),
    "gateway.routing.*": frozenset(),
    "gateway.migration.shadow": frozenset({"asyncio"}),  # its copy is a task of its own
    "gateway.migration.*": frozenset(),
    "gateway.adapters.*": frozenset({"asyncio", "threading", "concurrent", "_thread"}),
}

THIRD_PARTY_OWNERS: dict[str, str] = {
    "h11": "gateway.http.*",
    "httptools": "gateway.http.*",
    "wsproto": "gateway.http.*",
    "h2": "gateway.http.*",
    "hpack": "gateway.http.*",
    "hyperframe": "gateway.http.*",  # h2's frames: gateway/http/h2_receive_lane.py
    "a2wsgi": "gateway.adapters.*",
    "asgiref": "gateway.adapters.*",
    "uvloop": "gateway.process.worker",
    "watchfiles": "gateway.process.reload",
    "prometheus_client": "gateway.server.metrics",
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
    # Every event-loop rule sits inside a folder that has its row.
    assert all(lookup(LAYERS, p.removesuffix(".*")) for p in EVENT_LOOP_FREE)


def test_the_rows_are_the_folders() -> None:
    """DESIGN §3 maps one to one onto folders: each subpackage of gateway/ has one row."""
    folders = {p.name for p in (ROOT / "gateway").iterdir() if (p / "__init__.py").exists()}
    assert {f"gateway.{folder}.*" for folder in folders} <= set(LAYERS)
    assert len(LAYERS) <= 17  # 16, and gateway.native (issue 18, point 2)


# --- the checker itself: it must catch what it claims to catch -----------------------------


@pytest.mark.parametrize(
    ("module", "source", "fragment"),
    [
        ("gateway.config.loader", "import asyncio", "free of event loops"),
        ("gateway.routing.router", "from threading import Lock", "free of event loops"),
        ("gateway.migration.rules", "import asyncio", "free of event loops"),
        ("gateway.migration.shadow", "import threading", "free of event loops"),
        ("gateway.http.session", "import concurrent.futures", "free of event loops"),
        ("gateway", "import signal", "free of event loops"),
        ("gateway.adapters.wsgi", "import socket", "free of event loops"),
        ("gateway.routing.router", "from gateway.server.connection import C", "not allowed"),
        ("gateway.routing.router", "from gateway import server", "not allowed"),
        ("gateway.config.loader", "from .. import routing", "not allowed"),
        ("gateway.config.loader", "from gateway.migration.rules import Canary", "not allowed"),
        ("gateway.config.checks", "from gateway.http.session import S", "not allowed"),
        ("gateway.http.session", "from ..server.connection import C", "not allowed"),
        ("gateway.http.session", "from gateway.config.loader import Config", "not allowed"),
        ("gateway.errors", "import gateway.asgi", "not allowed"),
        ("gateway.server.connection", "from gateway.process import worker", "not allowed"),
        ("gateway.migration.rules", "from gateway.server.cycle import Cycle", "not allowed"),
        ("gateway.adapters.wsgi", "from gateway.routing.router import Router", "not allowed"),
        ("gateway.process.worker", "from gateway.cli import main", "not allowed"),
        ("gateway.process.worker", "import adapters", "no owner"),
        ("gateway.routing.router", "import h11", "only gateway.http.* may import it"),
        ("gateway.server.connection", "import wsproto.events", "only gateway.http.*"),
        ("gateway.process.worker", "from a2wsgi import WSGIMiddleware", "only gateway.adapters"),
        ("gateway.server.connection", "import uvloop", "only gateway.process.worker"),
        ("gateway.routing.router", "import starlette", "no owner"),
        ("gateway.routing.router", "if TYPE_CHECKING:\n    from gateway.server import X", "not"),
        ("gateway.routing.router", "def f():\n    import gateway.process.worker", "not allowed"),
    ],
)
def test_checker_catches(module: str, source: str, fragment: str) -> None:
    known = {
        "gateway.config.loader",
        "gateway.routing.router",
        "gateway.process.worker",
        "gateway.server.connection",
        "gateway.server.cycle",
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
        ("gateway.config.loader", "import tomllib\nfrom gateway.errors import ConfigError"),
        ("gateway.config.loader", "from ..errors import ConfigError\nfrom . import checks"),
        ("gateway.config.checks", "from gateway.http.forwarded import ProxyTrust"),
        ("gateway.routing.router", "from gateway.config.loader import MountConfig"),
        ("gateway.migration.shadow", "import asyncio\nfrom gateway.routing import router"),
        ("gateway.http.h11_session", "import h11\nfrom gateway.http.session import Session"),
        ("gateway.http.h11_session", "from . import session\nfrom .. import asgi"),
        ("gateway.adapters.wsgi", "import asyncio\nfrom concurrent.futures import Future"),
        ("gateway.adapters.wsgi", "import a2wsgi\nfrom asgiref.compatibility import guarantee"),
        ("gateway.process.worker", "import uvloop\nimport asyncio\nimport gateway.adapters"),
        ("gateway.server.lifespan", "import asyncio\nfrom gateway.asgi import Scope"),
        ("gateway.server.connection", "from gateway.http import session\nimport gateway.migration"),
        ("gateway.cli", "from gateway import __version__\nfrom gateway.process import supervisor"),
        ("gateway.__main__", "from gateway.cli import main"),
    ],
)
def test_checker_allows(module: str, source: str) -> None:
    known = {"gateway.http.session", "gateway.process.supervisor", "gateway.asgi"}
    assert violations(module, source, known=known) == []


def test_relative_imports_resolve_from_a_package_init() -> None:
    targets = set(imported_modules("gateway.http", "from . import events", True, set()))
    assert targets == {"gateway.http"}
    known = {"gateway.http.events"}
    targets = set(imported_modules("gateway.http", "from . import events", True, known))
    assert targets == {"gateway.http.events"}
    assert violations("gateway.http", "from .. import config", True) != []
