"""The settings of the server process itself (issue 14, point 5): hooks, pid, chdir,
user and group, as the mount file and the command line give them (gateway/config/loader.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.errors import ConfigError

MOUNT = '[[mount]]\nprefix = "/"\napp = "site.wsgi:application"\n'


def write(directory: Path, server: str) -> Path:
    path = directory / "gateway.toml"
    path.write_text(f"[server]\n{server}\n\n{MOUNT}")
    return path


def test_none_of_them_is_on_by_default(tmp_path: Path) -> None:
    server = load_config(write(tmp_path, "")).server
    assert (server.hooks, server.pid, server.chdir, server.user, server.group) == ("",) * 5


def test_file_paths_are_relative_to_the_mount_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path / "site")  # not where the mount file is
    server = load_config(write(tmp_path, 'pid = "run/g.pid"\nchdir = "app"')).server
    assert (server.pid, server.chdir) == (str(tmp_path / "run/g.pid"), str(tmp_path / "app"))


def test_command_line_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shell").mkdir()
    monkeypatch.chdir(tmp_path / "shell")
    overrides = {"pid": "g.pid", "chdir": "app"}
    server = load_config(write(tmp_path, 'pid = "ignored.pid"'), overrides).server
    shell = tmp_path / "shell"
    assert (server.pid, server.chdir) == (str(shell / "g.pid"), str(shell / "app"))


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ('hooks = "mysite.hooks:on_starting"', "hooks", "must be a module's dotted name"),
        ('hooks = "my-site"', "hooks", "must be a module's dotted name"),
        ("hooks = 1", "hooks", "expected a string, got integer 1"),
        ('user = "root; rm"', "user", "must be a user or group name, or a numeric id"),
        ('group = ""', None, None),
        ('user = "1000"', None, None),
        ('user = "www-data"', None, None),
        ('hooks = "mysite.gateway_hooks"', None, None),
    ],
)
def test_values_are_checked_where_they_are_read(
    tmp_path: Path, line: str, key: str | None, reason: str | None
) -> None:
    path = write(tmp_path, line)
    if key is None:
        load_config(path)
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.table, caught.value.key) == ("server", key)
    assert reason is not None and reason in caught.value.reason


def test_a_command_line_value_passes_the_same_check(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(command line\): \[server\] hooks: must be"):
        load_config(write(tmp_path, ""), {"hooks": "a:b"})
