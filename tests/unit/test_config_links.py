"""The mount file's links between mounts: names, fallback and canary keys, their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.mount_files import LEGACY, NEW, error, load

from gateway.cli import main
from gateway.config.limits import FALLBACK_BODY_BYTES


def test_defaults_and_values(tmp_path: Path) -> None:
    text = NEW + 'fallback = "legacy"\ncanary = "legacy"\n' + LEGACY
    new, legacy = load(tmp_path, text)
    assert (new.fallback, new.fallback_on, new.fallback_body_bytes) == (
        "legacy",
        (404, 405),
        FALLBACK_BODY_BYTES,
    )
    assert FALLBACK_BODY_BYTES == 1024 * 1024  # the documented default: 1 MiB
    assert (new.canary, new.canary_percent, new.canary_sticky, new.canary_header) == (
        "legacy",
        0.0,
        "none",
        "",
    )
    assert (legacy.prefix, legacy.name) == ("", "legacy")
    text = NEW + 'fallback = "legacy"\nfallback_on = [500, 404, 404]\nfallback_body_bytes = 0\n'
    text += 'canary = "legacy"\ncanary_percent = 12.5\ncanary_sticky = "header:X-User"\n'
    text += 'canary_header = "X-Canary"\n' + LEGACY
    new, _ = load(tmp_path, text)
    assert (new.fallback_on, new.fallback_body_bytes) == ((404, 500), 0)
    assert (new.canary_percent, new.canary_sticky, new.canary_header) == (
        12.5,
        "header:x-user",
        "x-canary",
    )


@pytest.mark.parametrize(
    "sticky", ["none", "client", "cookie:sessionid", "cookie:Session_ID", "header:x-user"]
)
def test_good_sticky_keys(tmp_path: Path, sticky: str) -> None:
    text = NEW + f'canary = "legacy"\ncanary_sticky = "{sticky}"\n' + LEGACY
    assert load(tmp_path, text)[0].canary_sticky == sticky


def test_a_mount_without_prefix_needs_a_name(tmp_path: Path) -> None:
    reason = error(tmp_path, NEW + '[[mount]]\napp = "old:app"\n', "mount #2", "prefix")
    assert "required" in reason and "name" in reason


def test_unknown_name(tmp_path: Path) -> None:
    text = NEW + 'fallback = "legasy"\n' + LEGACY
    reason = error(tmp_path, text, "mount #1", "fallback")
    assert reason.startswith("no mount is named 'legasy'")
    assert "'legacy'" in reason  # the names there are


def test_unknown_canary_name(tmp_path: Path) -> None:
    reason = error(tmp_path, NEW + 'canary = "newapi"\n', "mount #1", "canary")
    assert "no mount is named 'newapi'" in reason


def test_a_mount_cannot_be_its_own_target(tmp_path: Path) -> None:
    reason = error(tmp_path, NEW + 'fallback = "new"\n', "mount #1", "fallback")
    assert "its own fallback" in reason


def test_a_loop_of_fallbacks_names_both_ends(tmp_path: Path) -> None:
    text = NEW + 'fallback = "legacy"\n' + LEGACY + 'fallback = "new"\n'
    reason = error(tmp_path, text, "mount #1", "fallback")
    assert reason == (
        "'legacy' leads back to this mount: "
        "new (mount #1) -fallback-> legacy (mount #2) -fallback-> new (mount #1)"
    )


def test_a_loop_through_a_canary(tmp_path: Path) -> None:
    text = NEW + 'canary = "newer"\n'
    text += '[[mount]]\nname = "newer"\napp = "n:app"\nfallback = "legacy"\n'
    text += LEGACY + 'canary = "new"\n'
    reason = error(tmp_path, text, "mount #1", "canary")
    assert "new (mount #1) -canary-> newer (mount #2) -fallback-> legacy (mount #3)" in reason
    assert reason.endswith("-canary-> new (mount #1)")


def test_chains_without_a_loop_are_fine(tmp_path: Path) -> None:
    text = NEW + 'fallback = "legacy"\ncanary = "newer"\n'
    text += '[[mount]]\nname = "newer"\napp = "n:app"\nfallback = "legacy"\n' + LEGACY
    assert len(load(tmp_path, text)) == 3


def test_duplicate_names(tmp_path: Path) -> None:
    text = NEW + LEGACY + LEGACY.replace("old:app", "other:app")
    reason = error(tmp_path, text, "mount #3", "name")
    assert reason == "'legacy' is already the name of mount #2"


def test_target_only_mounts_do_not_clash_on_their_empty_prefix(tmp_path: Path) -> None:
    text = NEW + LEGACY + LEGACY.replace('"legacy"', '"other"')
    assert [m.prefix for m in load(tmp_path, text)] == ["/api", "", ""]


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ('fallback = ""', "fallback", "letters, digits"),
        ('fallback = "legacy"\nfallback_on = []', "fallback_on", "at least one"),
        ('fallback = "legacy"\nfallback_on = [99]', "fallback_on", "not an HTTP status"),
        ('fallback = "legacy"\nfallback_on = [600]', "fallback_on", "not an HTTP status"),
        ('fallback = "legacy"\nfallback_on = ["404"]', "fallback_on", "expected an array"),
        ('fallback = "legacy"\nfallback_on = 404', "fallback_on", "expected an array"),
        ('fallback = "legacy"\nfallback_body_bytes = -1', "fallback_body_bytes", ">= 0"),
        ('canary = "legacy"\ncanary_percent = 101', "canary_percent", "0 to 100"),
        ('canary = "legacy"\ncanary_percent = -0.5', "canary_percent", "0 to 100"),
        ('canary = "legacy"\ncanary_percent = nan', "canary_percent", "0 to 100"),
        ('canary = "legacy"\ncanary_percent = true', "canary_percent", "expected a number"),
        ('canary = "legacy"\ncanary_sticky = "ip"', "canary_sticky", "one of none, client"),
        ('canary = "legacy"\ncanary_sticky = "cookie:"', "canary_sticky", "one of"),
        ('canary = "legacy"\ncanary_sticky = "cookie:a b"', "canary_sticky", "one of"),
        ('canary = "legacy"\ncanary_sticky = "none:x"', "canary_sticky", "one of"),
        ('canary = "legacy"\ncanary_header = "x canary"', "canary_header", "header name"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, key: str, reason: str) -> None:
    assert reason in error(tmp_path, NEW + line + "\n" + LEGACY, "mount #1", key)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ('"1st"', "starts with a letter"),
        ('"a b"', "letters, digits"),
        ('"a>b"', "letters, digits"),
        ('"a:b"', "letters, digits"),
        ('"' + "a" * 65 + '"', "at most 64"),
        ("1", "expected a string"),
    ],
)
def test_bad_names(tmp_path: Path, name: str, reason: str) -> None:
    text = f'[[mount]]\nprefix = "/"\napp = "m:a"\nname = {name}\n'
    assert reason in error(tmp_path, text, "mount #1", "name")


@pytest.mark.parametrize(
    ("line", "key", "needs"),
    [
        ("fallback_on = [404]", "fallback_on", "fallback"),
        ("fallback_body_bytes = 10", "fallback_body_bytes", "fallback"),
        ("canary_percent = 10", "canary_percent", "canary"),
        ('canary_sticky = "client"', "canary_sticky", "canary"),
        ('canary_header = "x-canary"', "canary_header", "canary"),
    ],
)
def test_options_without_their_link(tmp_path: Path, line: str, key: str, needs: str) -> None:
    reason = error(tmp_path, NEW + line + "\n" + LEGACY, "mount #1", key)
    assert reason == f'applies only with {needs} = "NAME"'


def test_check_prints_each_mounts_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apps = Path(__file__).parents[1] / "apps"
    text = f"[server]\npythonpath = [{str(apps)!r}]\n"
    text += '[[mount]]\nprefix = "/api"\napp = "migration_new:app"\ninterface = "asgi"\n'
    text += 'fallback = "legacy"\nfallback_on = [404]\ncanary = "newer"\n'
    text += 'canary_percent = 12.5\ncanary_sticky = "cookie:sid"\ncanary_header = "x-canary"\n'
    text += '[[mount]]\nname = "legacy"\napp = "migration_legacy:app"\ninterface = "wsgi"\n'
    text += '[[mount]]\nname = "newer"\napp = "migration_new:app"\ninterface = "asgi"\n'
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ["(legacy)", "wsgi", "migration_legacy:app", "10"] in [line.split() for line in lines]
    targets = lines[lines.index("targets:") + 1 :]
    assert targets == [
        "  /api: fallback -> legacy on 404; "
        "canary 12.5% -> newer (sticky cookie:sid, forced by x-canary)"
    ]
