"""The suite's own plan (DESIGN §6), checked: where a test gets its helpers, and what a
unit test may not do.

Every module under tests/ is parsed with `ast` (nothing is imported) and held to two
rules:

1. Helpers come from `support.<module>` (tests/support/): no module imports `conftest`
   or a test module. pytest's importlib mode imports those under names of its own, so
   such an import works in one import mode only (tests/system/test_suite_imports.py
   collects the suite in both).
2. A unit test opens no socket and starts no process: no module under tests/unit
   imports `socket`, `subprocess` or `multiprocessing`. A test that needs one belongs in
   tests/integration (sockets) or tests/system (processes).

The test apps (tests/apps/) are apps, not tests: a mount's pythonpath imports them, so
they are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import TESTS_DIR

UNIT_DIR = TESTS_DIR / "unit"
# The modules whose import means a socket or a process (rule "A unit test opens no socket").
UNIT_FORBIDDEN = frozenset({"socket", "subprocess", "multiprocessing"})


def imported_roots(source: str) -> Iterator[str]:
    """The top-level name of every absolute import in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]


def broken_rules(source: str, unit: bool) -> list[str]:
    """What `source` imports against this module's rules, one line per import."""
    broken = []
    for root in imported_roots(source):
        if root == "conftest" or root.startswith("test_"):
            broken.append(f"imports {root}: take the helper from support.<module>")
        elif unit and root in UNIT_FORBIDDEN:
            broken.append(f"imports {root}: a unit test opens no socket, starts no process")
    return broken


def suite_modules() -> list[Path]:
    return sorted(
        p for p in TESTS_DIR.rglob("*.py") if "apps" not in p.relative_to(TESTS_DIR).parts
    )


@pytest.mark.parametrize("path", suite_modules(), ids=lambda p: str(p.relative_to(TESTS_DIR)))
def test_the_module_keeps_the_suites_rules(path: Path) -> None:
    unit = path.is_relative_to(UNIT_DIR)
    assert broken_rules(path.read_text("utf-8"), unit) == []


@pytest.mark.parametrize(
    "source",
    [
        "from conftest import Server",
        "import conftest",
        "from test_adapters import Receive",
        "import test_metrics as metrics",
    ],
)
def test_the_checker_catches_a_helper_taken_from_conftest_or_a_test(source: str) -> None:
    assert len(broken_rules(source, unit=False)) == 1


@pytest.mark.parametrize(
    "source", ["import socket", "import subprocess as sp", "from multiprocessing import Pool"]
)
def test_the_checker_catches_a_socket_or_a_process_in_a_unit_test(source: str) -> None:
    assert len(broken_rules(source, unit=True)) == 1
    assert broken_rules(source, unit=False) == []


def test_the_checker_passes_support_and_the_gateway() -> None:
    source = "from support.servers import write_config\nimport ssl\nfrom gateway import api\n"
    assert broken_rules(source, unit=True) == []
