"""A hooks module with one hook that does nothing: `--hooks quiet_hooks` in the every-flag
tests (tests/system/test_flags.py); tests/system/test_hooks.py records the real calls."""

from __future__ import annotations

from typing import Any


def when_ready(server: Any) -> None:
    """Nothing to do: the flag's test checks only that the setting arrived."""
