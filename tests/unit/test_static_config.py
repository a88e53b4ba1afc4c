"""`static = "DIR"` mounts in the mount file: what is accepted, and each mistake named.

Config stays inert: the directory is anchored at the mount file but never looked at
here; a missing one fails when a worker loads the mount (tests/system/test_static_startup).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.config.mount_table import APP_ONLY_KEYS
from gateway.errors import AppLoadError, ConfigError, StartupError
from gateway.process.mounts import load_mounts


def load(tmp_path: Path, mount: str) -> ConfigError | None:
    path = tmp_path / "conf" / "gateway.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'[[mount]]\nprefix = "/static"\n{mount}\n', encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.table == "mount #1"
        assert f"[mount #1] {exc.key}: " in str(exc) and str(path) in str(exc)
        return exc
    return None


def test_static_is_relative_to_the_mount_file_and_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "gateway.toml"
    path.parent.mkdir()
    path.write_text('[[mount]]\nprefix = "/static"\nstatic = "../site/./staticfiles"\n')
    mount = load_config(path).mounts[0]
    assert mount.static == str(tmp_path / "site" / "staticfiles")  # does not exist: fine
    assert (mount.app, mount.threads, mount.max_queue) == ("", None, None)


def test_an_absolute_static_directory_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[[mount]]\nprefix = "/"\nstatic = {str(tmp_path / "s")!r}\n')
    assert load_config(path).mounts[0].static == str(tmp_path / "s")


def test_app_and_static_together(tmp_path: Path) -> None:
    error = load(tmp_path, 'app = "m:a"\nstatic = "s"')
    assert error is not None and error.key == "static"
    assert "not both" in error.reason


def test_neither_app_nor_static(tmp_path: Path) -> None:
    error = load(tmp_path, "")
    assert error is not None and error.key == "app"
    assert "required" in error.reason and "static" in error.reason


@pytest.mark.parametrize(
    "line",
    [
        'interface = "asgi"',
        "threads = 4",
        "max_queue = 10",
        "body_buffer_bytes = 4096",
        'lifespan = "off"',
    ],
)
def test_app_settings_on_a_static_mount(tmp_path: Path, line: str) -> None:
    error = load(tmp_path, f'static = "s"\n{line}')
    key = line.split(" = ")[0]
    assert key in APP_ONLY_KEYS
    assert error is not None and error.key == key
    assert "static mount" in error.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('static = ""', "must name a directory"),
        ("static = 1", "expected a string"),
        ('static = "a\\u0000b"', "NUL"),
    ],
)
def test_bad_static_values(tmp_path: Path, line: str, reason: str) -> None:
    error = load(tmp_path, line)
    assert error is not None and error.key == "static"
    assert reason in error.reason


def test_max_body_bytes_is_allowed_on_a_static_mount(tmp_path: Path) -> None:
    assert load(tmp_path, 'static = "s"\nmax_body_bytes = 0') is None


def test_a_missing_directory_fails_at_load_time_with_exit_status_3(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[[mount]]\nprefix = "/static"\nstatic = "staticfiles"\n')
    config = load_config(path)
    with pytest.raises(AppLoadError, match="staticfiles") as caught:
        load_mounts(config)
    assert isinstance(caught.value, StartupError) and caught.value.exit_status == 3
    (tmp_path / "staticfiles").mkdir()
    (mount,) = load_mounts(config)
    assert mount.loaded.interface == "static"
