"""The shadow keys of a [[mount]] table: defaults, values, errors, links and `check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.mount_files import LEGACY, NEW, error, load

from gateway.cli import main
from gateway.config.limits import SHADOW_MAX_IN_FLIGHT


def test_defaults(tmp_path: Path) -> None:
    new, _ = load(tmp_path, NEW + 'shadow = "legacy"\n' + LEGACY)
    assert new.shadow == "legacy"
    assert (new.shadow_percent, new.shadow_methods) == (100.0, ("GET", "HEAD"))
    assert (new.shadow_ignore_json_keys, new.shadow_log) == ((), "")
    assert new.shadow_max_in_flight == SHADOW_MAX_IN_FLIGHT == 16
    assert new.shadow_drop_headers == ("cookie", "authorization")  # issue 13, point 12


def test_values(tmp_path: Path) -> None:
    text = NEW + 'shadow = "legacy"\nshadow_percent = 12.5\n'
    text += 'shadow_methods = ["get", "POST", "GET"]\n'
    text += 'shadow_ignore_json_keys = ["updated_at", "request_id"]\n'
    text += 'shadow_log = "logs/shadow.jsonl"\nshadow_max_in_flight = 4\n'
    text += 'shadow_drop_headers = ["Cookie", "X-Api-Key", "cookie"]\n' + LEGACY
    new, _ = load(tmp_path, text)
    assert (new.shadow_percent, new.shadow_methods) == (12.5, ("GET", "POST"))
    assert new.shadow_ignore_json_keys == ("updated_at", "request_id")
    assert new.shadow_log == str(tmp_path / "logs" / "shadow.jsonl")  # beside the file
    assert new.shadow_max_in_flight == 4
    assert new.shadow_drop_headers == ("cookie", "x-api-key")


def test_an_absolute_shadow_log_stays(tmp_path: Path) -> None:
    text = NEW + 'shadow = "legacy"\nshadow_log = "/var/log/gw/shadow.jsonl"\n' + LEGACY
    assert load(tmp_path, text)[0].shadow_log == "/var/log/gw/shadow.jsonl"


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ('shadow = "a b"', "shadow", "letters, digits"),
        ('shadow = "legacy"\nshadow_percent = 100.5', "shadow_percent", "0 to 100"),
        ('shadow = "legacy"\nshadow_percent = true', "shadow_percent", "expected a number"),
        ('shadow = "legacy"\nshadow_methods = []', "shadow_methods", "at least one"),
        ('shadow = "legacy"\nshadow_methods = "GET"', "shadow_methods", "expected an array"),
        ('shadow = "legacy"\nshadow_methods = ["GE T"]', "shadow_methods", "not a request"),
        ('shadow = "legacy"\nshadow_methods = [1]', "shadow_methods", "expected an array"),
        ('shadow = "legacy"\nshadow_ignore_json_keys = [""]', "shadow_ignore_json_keys", "empty"),
        ('shadow = "legacy"\nshadow_ignore_json_keys = "id"', "shadow_ignore_json_keys", "array"),
        ('shadow = "legacy"\nshadow_log = 1', "shadow_log", "expected a string"),
        ('shadow = "legacy"\nshadow_max_in_flight = 0', "shadow_max_in_flight", ">= 1"),
        ('shadow = "legacy"\nshadow_max_in_flight = 2.0', "shadow_max_in_flight", "integer"),
        ('shadow = "legacy"\nshadow_drop_headers = ["a b"]', "shadow_drop_headers", "header"),
        ('shadow = "legacy"\nshadow_drop_headers = "cookie"', "shadow_drop_headers", "array"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, key: str, reason: str) -> None:
    assert reason in error(tmp_path, NEW + line + "\n" + LEGACY, "mount #1", key)


@pytest.mark.parametrize(
    "line",
    [
        "shadow_percent = 10",
        'shadow_methods = ["GET"]',
        'shadow_ignore_json_keys = ["id"]',
        'shadow_log = "x.jsonl"',
        "shadow_max_in_flight = 4",
        'shadow_drop_headers = ["cookie"]',
    ],
)
def test_options_without_shadow(tmp_path: Path, line: str) -> None:
    key = line.split(" =")[0]
    reason = error(tmp_path, NEW + line + "\n" + LEGACY, "mount #1", key)
    assert reason == 'applies only with shadow = "NAME"'


def test_an_unknown_shadow_names_the_names_there_are(tmp_path: Path) -> None:
    reason = error(tmp_path, NEW + 'shadow = "legasy"\n' + LEGACY, "mount #1", "shadow")
    assert reason.startswith("no mount is named 'legasy'") and "'legacy'" in reason


def test_a_mount_cannot_shadow_itself(tmp_path: Path) -> None:
    assert "its own shadow" in error(tmp_path, NEW + 'shadow = "new"\n', "mount #1", "shadow")


def test_a_loop_through_a_shadow(tmp_path: Path) -> None:
    """A copy sent to a mount whose fallback leads back would be copied again, forever."""
    text = NEW + 'shadow = "legacy"\n' + LEGACY + 'fallback = "new"\n'
    reason = error(tmp_path, text, "mount #1", "shadow")
    assert reason == (
        "'legacy' leads back to this mount: "
        "new (mount #1) -shadow-> legacy (mount #2) -fallback-> new (mount #1)"
    )


def test_one_mount_may_be_both_canary_and_shadow_target(tmp_path: Path) -> None:
    text = NEW + 'canary = "legacy"\nshadow = "legacy"\nfallback = "legacy"\n' + LEGACY
    assert load(tmp_path, text)[0].shadow == "legacy"


def test_check_prints_the_shadow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = Path(__file__).parents[1] / "apps"
    text = f"[server]\npythonpath = [{str(apps)!r}]\n"
    text += '[[mount]]\nprefix = "/api"\napp = "migration_legacy:app"\ninterface = "wsgi"\n'
    text += 'shadow = "newapi"\nshadow_percent = 5\nshadow_methods = ["GET", "POST"]\n'
    text += '[[mount]]\nname = "newapi"\napp = "migration_new:app"\ninterface = "asgi"\n'
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[lines.index("targets:") + 1 :] == ["  /api: shadow 5% -> newapi (GET, POST)"]


def test_the_share_and_denoise_keys_load_and_check(tmp_path: Path) -> None:
    text = NEW + 'shadow = "legacy"\nshadow_share = 30\nshadow_denoise = true\n'
    text += 'shadow_denoise_percent = 25\nshadow_ignore_headers = ["X-Request-Id"]\n' + LEGACY
    new = load(tmp_path, text)[0]
    assert (new.shadow_share, new.shadow_denoise, new.shadow_denoise_percent) == (30, True, 25)
    assert new.shadow_ignore_headers == ("x-request-id",)
    defaults = load(tmp_path, NEW + 'shadow = "legacy"\n' + LEGACY)[0]
    assert (defaults.shadow_share, defaults.shadow_denoise) == (100, False)
    assert (defaults.shadow_denoise_percent, defaults.shadow_ignore_headers) == (10, ())


@pytest.mark.parametrize(
    ("keys", "key", "reason"),
    [
        ('shadow = "legacy"\nshadow_share = 101', "shadow_share", "0 to 100"),
        ('shadow = "legacy"\nshadow_denoise = "yes"', "shadow_denoise", "true or false"),
        ('shadow = "legacy"\nshadow_denoise_percent = -1', "shadow_denoise_percent", "0 to 100"),
        ('shadow = "legacy"\nshadow_ignore_headers = ["a b"]', "shadow_ignore_headers", "header"),
        ("shadow_denoise = true", "shadow_denoise", 'applies only with shadow = "NAME"'),
        ("shadow_share = 5", "shadow_share", 'applies only with shadow = "NAME"'),
    ],
)
def test_the_share_and_denoise_keys_are_checked(
    tmp_path: Path, keys: str, key: str, reason: str
) -> None:
    assert reason in error(tmp_path, NEW + keys + "\n" + LEGACY, "mount #1", key)


def test_check_prints_the_share_and_denoise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apps = Path(__file__).parents[1] / "apps"
    text = f"[server]\npythonpath = [{str(apps)!r}]\n"
    text += '[[mount]]\nprefix = "/api"\napp = "migration_legacy:app"\ninterface = "wsgi"\n'
    text += 'shadow = "newapi"\nshadow_share = 30\nshadow_denoise = true\n'
    text += '[[mount]]\nname = "newapi"\napp = "migration_new:app"\ninterface = "asgi"\n'
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[lines.index("targets:") + 1 :] == [
        "  /api: shadow 100% -> newapi (GET, HEAD; share 30% by hash; denoise 10%)"
    ]
