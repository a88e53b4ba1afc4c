"""The access log's format, parsed once and rendered per entry (gateway/config/access_format.py),
and its validation as a setting (issue 14, point 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.asgi import set_mount_label
from gateway.config.access_format import AccessEntry, compile_format, default_line, fields
from gateway.config.loader import load_config
from gateway.errors import ConfigError


def scope(label: str = "/api", **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/api/users/7",
        "query_string": b"lang=en",
        "headers": [(b"user-agent", b"curl/8"), (b"x-request-id", b"abc")],
        "client": ("10.0.0.9", 40000),
        **extra,
    }
    set_mount_label(result, label)
    return result


def entry(**extra: Any) -> AccessEntry:
    headers = [(b"content-type", b"application/json")]
    return AccessEntry(scope(**extra), "GET", 200, 35, 0.0021, headers)


def test_the_default_line_is_the_one_it_always_was() -> None:
    line = '10.0.0.9:40000 "GET /api/users/7?lang=en HTTP/1.1" 200 35B 2.1ms mount=/api'
    assert default_line(entry()) == line == str(entry())
    assert compile_format("").render(entry()) == line
    websocket = AccessEntry(scope(type="websocket"), "GET", 101, 0, 0.5)
    assert str(websocket).endswith("mount=/api websocket")


def test_atoms_render_what_gunicorn_means() -> None:
    fmt = compile_format('%(h)s "%(r)s" %(s)s %(b)s %(M)s %(D)s %(U)s %(q)s %(a)s %%')
    assert fmt.render(entry()) == '10.0.0.9 "GET /api/users/7?lang=en HTTP/1.1" 200 35 2 2100 ' + (
        "/api/users/7 lang=en curl/8 %"
    )
    empty = AccessEntry(scope(), "GET", 204, 0, 0.0)
    assert compile_format("%(b)s %(B)s").render(empty) == "- 0"


def test_fields_and_environment() -> None:
    fmt = compile_format("%({X-Request-ID}i)s %({content-type}o)s %({missing}i)s %({HOME}e)s")
    assert fmt.render(entry()).split()[:3] == ["abc", "application/json", "-"]


def test_literal_braces_survive() -> None:
    assert compile_format("{%(s)s}").render(entry()) == "{200}"


@pytest.mark.parametrize(
    ("label", "mount", "route"),
    [
        ("/api", "/api", "-"),
        ("/api>fallback:legacy", "/api", "fallback:legacy"),
        ("/shop>canary:new>fallback:old", "/shop", "canary:new>fallback:old"),
        ("-", "-", "-"),
    ],
)
def test_mount_and_route(label: str, mount: str, route: str) -> None:
    assert compile_format("%(mount)s %(route)s").render(entry(label=label)) == f"{mount} {route}"
    assert (fields(entry(label=label))["mount"], fields(entry(label=label))["route"]) == (
        mount,
        route,
    )


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("%(nope)s", "unknown atom %(nope)s"),
        ("%(h)s 50%", "a lone '%'"),
        ("%(h)d", "a lone '%'"),
        ("%({x}z)s", "unknown atom"),
    ],
)
def test_a_bad_format_is_a_config_error(tmp_path: Path, fmt: str, reason: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"[server]\naccess_log_format = {fmt!r}\n[[mount]]\nprefix = '/'\napp = 'a:b'\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.key == "access_log_format" and reason in error.value.reason


def test_a_good_format_loads(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        "[server]\naccess_log_format = '%(h)s %(r)s'\n[[mount]]\nprefix = '/'\napp = 'a:b'\n"
    )
    assert load_config(path).server.access_log_format == "%(h)s %(r)s"
