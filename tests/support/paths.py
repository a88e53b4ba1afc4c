"""Where the tests find what they serve: the test apps and the repository's examples.

Rules:
1. Paths only: this module imports nothing of the gateway, so any helper may use it.
2. Every path is anchored at this file, so a test's working directory never
   changes what it serves.
"""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).parent.parent
# Small apps the tests mount by reference ("worker_probe:app"); mount files put this
# folder on their pythonpath.
APPS_DIR = TESTS_DIR / "apps"
EXAMPLES_DIR = TESTS_DIR.parent / "examples"
