"""Development reload (`gateway serve --reload`): restart the server when a file changes.

To be written (issue 4, point 4).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import Config


def run(config: Config, overrides: Mapping[str, object]) -> int:
    """Serve `config`, restarting whenever an app's source or the mount file changes."""
    raise NotImplementedError("--reload is not written yet")
