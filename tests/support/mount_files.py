"""Mount files written by a test and loaded by the real loader, for the links between
mounts (fallback, canary and shadow keys).

Rules:
1. `error` checks that a ConfigError names its file, table and key before it returns the
   reason, so a test of a message cannot pass on the wrong key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.config.mount_table import MountConfig
from gateway.errors import ConfigError

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
