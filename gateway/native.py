"""Which form of the per-request modules runs: compiled by mypyc at install (setup.py) or
pure Python, from the same source (issue 18, point 2). Rules:
1. Compiled where the install compiled them: the modules setup.py lists are then
   extension modules beside their .py files, sharing one library, `gateway__mypyc`.
2. GATEWAY_PURE_PYTHON=1 in the environment runs the .py files even where compiled ones
   are installed: gateway/__init__.py asks `prefer_source` before any of them is
   imported, so that a bug can be told from a compiler's.
3. The form is said, not guessed: `gateway --version` names it, and a start that runs
   pure Python says why in one log line (gateway/process/worker.py).
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

PURE_ENV = "GATEWAY_PURE_PYTHON"
SHARED_LIBRARY = "gateway__mypyc"  # setup.py's group_name, with mypyc's suffix


def pure_requested() -> bool:
    """Whether GATEWAY_PURE_PYTHON=1 asks for the .py files (rule "GATEWAY_PURE_PYTHON=1")."""
    return os.environ.get(PURE_ENV) == "1"


@functools.cache
def compiled() -> bool:
    """Whether the per-request modules run compiled (rule "compiled where the install").

    Asked of this package's own folder, not of the import path: `python -m gateway` in a
    checkout runs the checkout's .py files even where a compiled install is on the path.
    Asked once, at start (gateway/cli.py), before a supervisor drops its privileges
    (`user`), after which the package's folder may not be readable.
    """
    if pure_requested() or importlib.util.find_spec(SHARED_LIBRARY) is None:
        return False
    http = Path(__file__).parent / "http"
    return any(_is_file(http / f"session{suffix}") for suffix in EXTENSION_SUFFIXES)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder this process may not read: it cannot say
        return False


def form() -> str:
    """The form that runs, for `gateway --version` (rule "the form is said")."""
    if compiled():
        return "compiled by mypyc"
    return f"pure Python ({why_pure()})"


def why_pure() -> str:
    """Why the .py files run: asked for, or never compiled."""
    if pure_requested():
        return f"{PURE_ENV}=1"
    return "not compiled at install"


class SourceFirst:
    """Finds a gateway module's .py file where an extension module stands beside it
    (rule "GATEWAY_PURE_PYTHON=1")."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith("gateway."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.origin is None:
            return spec
        if not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return spec
        source = Path(spec.origin).with_name(name.rpartition(".")[2] + ".py")
        if not source.is_file():
            return spec
        return importlib.util.spec_from_file_location(name, source)


def prefer_source() -> None:
    """Puts SourceFirst ahead of the import system's finders when GATEWAY_PURE_PYTHON=1;
    once, before any compiled module is imported."""
    if pure_requested() and not any(isinstance(f, SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())
