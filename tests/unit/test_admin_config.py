"""The admin listener's settings (issue 17, point 1): admin_bind and admin_token, and
what they turn on (metrics_on)."""

from __future__ import annotations

import pytest

from gateway.config.bind import Bind
from gateway.config.loader import parse_config
from gateway.config.server_table import ServerConfig
from gateway.errors import ConfigError
from gateway.server import metrics

MOUNT = '\n[[mount]]\nprefix = "/"\napp = "a:b"\n'


def server_of(table: str, overrides: dict[str, object] | None = None) -> ServerConfig:
    return parse_config("[server]\n" + table + MOUNT, "g.toml", overrides).server


def test_admin_bind_is_off_by_default_and_parsed_like_bind() -> None:
    assert server_of("").admin_bind is None
    assert server_of('admin_bind = ""').admin_bind is None
    assert server_of('admin_bind = "127.0.0.1:9100"').admin_bind == Bind(
        "tcp", host="127.0.0.1", port=9100
    )
    assert server_of('admin_bind = "unix:/run/admin.sock"').admin_bind == Bind(
        "unix", path="/run/admin.sock"
    )
    assert server_of("", {"admin_bind": "[::1]:9100"}).admin_bind == Bind(
        "tcp", host="::1", port=9100
    )


def test_a_malformed_admin_bind_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[server\] admin_bind: .*missing host"):
        server_of('admin_bind = "9100"')
    with pytest.raises(ConfigError, match=r"\[server\] admin_bind: expected a string"):
        server_of('admin_bind = ["127.0.0.1:9100"]')


def test_admin_bind_equal_to_a_bind_address_is_refused() -> None:
    table = 'bind = ["127.0.0.1:8000", "unix:/tmp/g.sock"]\nadmin_bind = "unix:/tmp/g.sock"'
    with pytest.raises(ConfigError, match=r"\[server\] admin_bind: unix:/tmp/g.sock is in bind"):
        server_of(table)
    server_of('bind = ["127.0.0.1:8000"]\nadmin_bind = "127.0.0.1:8001"')  # apart: fine


def test_admin_token_must_fit_in_a_header() -> None:
    assert server_of('admin_token = "s3cret-T0ken"').admin_token == "s3cret-T0ken"
    for bad in ("two words", "line\\nbreak", "caf\u00e9"):
        with pytest.raises(ConfigError, match=r"\[server\] admin_token: must be printable"):
            server_of(f'admin_token = "{bad}"')


def test_admin_bind_turns_metrics_on_and_needs_prometheus_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = ServerConfig(admin_bind=Bind("tcp", host="127.0.0.1", port=9100))
    assert metrics.metrics_on(admin)
    assert not metrics.metrics_on(ServerConfig())
    monkeypatch.setattr(metrics, "INSTALLED", False)
    with pytest.raises(metrics.MetricsUnavailable, match=r"admin_bind needs prometheus_client"):
        metrics.require(admin)
