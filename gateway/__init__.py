"""gateway: one server for a team's WSGI and ASGI apps, mounted side by side by URL prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway import native

native.prefer_source()  # before any compiled module is imported (gateway/native.py)

if TYPE_CHECKING:  # what type checkers see of the lazy names below
    from gateway.api import TestServer as TestServer
    from gateway.api import run as run

__version__ = "0.1.0"
__all__ = ["TestServer", "__version__", "run"]


def __getattr__(name: str) -> Any:
    """`gateway.run` and `gateway.TestServer` (gateway/api.py), imported on first use, so
    that importing one module of the package does not import the whole server."""
    if name in ("run", "TestServer"):
        from gateway import api

        return getattr(api, name)
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
