"""Mount files: the mounts many served tests share (the probe apps of tests/apps), and
files written by a test and loaded by the real loader, for the links between mounts
(fallback, canary and shadow keys).

Rules:
1. `error` checks that a ConfigError names its file, table and key before it returns the
   reason, so a test of a message cannot pass on the wrong key.
2. A shared mount is TOML text that starts and ends with a newline, so that mounts
   joined with `+` stay apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.config.mount_table import MountConfig
from gateway.errors import ConfigError

PROBE_ASGI_MOUNT = """
[[mount]]
prefix = "/asgi"
app = "probe_asgi:app"
interface = "asgi"
"""


def probe_wsgi_mount(threads: int = 2) -> str:
    """tests/apps/probe_wsgi.py at /wsgi, on a pool of `threads`."""
    return f"""
[[mount]]
prefix = "/wsgi"
app = "probe_wsgi:app"
interface = "wsgi"
threads = {threads}
"""


WS_MOUNT = """
[[mount]]
prefix = "/ws"
app = "ws_apps:app"
interface = "asgi"
"""
# The probe apps: tests/apps/probe_asgi.py at /asgi, probe_wsgi.py at /wsgi.
PROBE_MOUNTS = PROBE_ASGI_MOUNT + probe_wsgi_mount()


def fallback_mounts(cap: int) -> str:
    """tests/apps/migration_new.py at /api, falling back to migration_legacy.py's WSGI
    app (named "legacy") for requests whose bodies stay within `cap` bytes."""
    return f"""
[[mount]]
prefix = "/api"
app = "migration_new:app"
interface = "asgi"
fallback = "legacy"
fallback_body_bytes = {cap}

[[mount]]
name = "legacy"
app = "migration_legacy:app"
interface = "wsgi"
threads = 4
"""


# tests/apps/shadow_new.py as the shadow named "newapi", and served itself at /new.
SHADOW_NEW_MOUNTS = """
[[mount]]
name = "newapi"
app = "shadow_new:app"
interface = "asgi"

[[mount]]
prefix = "/new"
app = "shadow_new:app"
interface = "asgi"
"""
# tests/apps/limits_app.py, ASGI at /asgi and WSGI at /wsgi on a small pool and queue.
LIMITS_MOUNTS = """
[[mount]]
prefix = "/asgi"
app = "limits_app:app"
interface = "asgi"

[[mount]]
prefix = "/wsgi"
app = "limits_app:wsgi_app"
interface = "wsgi"
threads = 2
max_queue = 2
"""

NEW = '[[mount]]\nprefix = "/api"\nname = "new"\napp = "new:app"\n'


LEGACY = '[[mount]]\nname = "legacy"\napp = "old:app"\n'


def load(tmp_path: Path, text: str) -> tuple[MountConfig, ...]:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path).mounts


def error(tmp_path: Path, text: str, table: str, key: str) -> str:
    """The reason of the ConfigError, once its file, table and key are checked."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.file == str(tmp_path / "gateway.toml")
    assert (caught.value.table, caught.value.key) == (table, key)
    assert f"[{table}] {key}: " in str(caught.value)
    return caught.value.reason
