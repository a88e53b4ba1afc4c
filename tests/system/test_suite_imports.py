"""The suite collects under both of pytest's import modes (issue 15, point 9).

`prepend`, pytest's default, puts each test folder on sys.path; `importlib` imports each
test module under a name of its own and puts nothing there. A suite that passes in only
one of them leans on an accident of the other (a helper imported from conftest, a test
module imported by another): tests/unit/test_suite_layout.py holds those imports to
support.<module>, and this test shows the result.

Rules:
1. pytest runs as its own process (`python -P`: the working directory stays off
   sys.path, as for the `pytest` command), so the collection is the one a developer
   gets; PYTEST_ADDOPTS is dropped so the outer run's options do not leak in.
2. Both modes must collect without an error, and the same tests by node id.
"""

from __future__ import annotations

import os
import subprocess
import sys

from support.paths import TESTS_DIR

REPO_DIR = TESTS_DIR.parent
# Far above a collection of the whole suite (about 3 s), for a shared slow machine.
COLLECT_DEADLINE_S = 120.0


def collected(import_mode: str) -> list[str]:
    """The node ids that `pytest --collect-only` finds in tests/ under `import_mode`."""
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"}
    done = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         f"--import-mode={import_mode}", "tests"],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=COLLECT_DEADLINE_S,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_suite_collects_the_same_tests_under_both_import_modes() -> None:
    prepend = collected("prepend")
    assert any("test_suite_imports.py::" in node for node in prepend)  # this very test
    assert collected("importlib") == prepend
