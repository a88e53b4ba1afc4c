"""gateway.config: the mount file in, frozen dataclasses out, every mistake named."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from gateway.adapters import WSGIAdapter
from gateway.asgi import Interface
from gateway.config.bind import Bind, parse_bind
from gateway.config.limits import DEFAULT_WSGI_MAX_QUEUE, DEFAULT_WSGI_THREADS, LISTEN_BACKLOG
from gateway.config.loader import Config, load_config, parse_config
from gateway.config.mount_table import MountConfig
from gateway.config.options import cli_options, describe_settings
from gateway.config.server_table import ServerConfig
from gateway.config.settings import OptionKind
from gateway.errors import AppLoadError, ConfigError
from gateway.process.mounts import load_mounts

MOUNT = '[[mount]]\nprefix = "/"\napp = "site.wsgi:application"\n'


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(
    tmp_path: Path, text: str, overrides: dict[str, object] | None = None
) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    assert caught.value.file.startswith(str(path))
    assert str(path) in str(caught.value)
    return caught.value


def assert_names(error: ConfigError, table: str, key: str | None) -> None:
    """The message a user reads names the table and the key, not only the attributes."""
    assert (error.table, error.key) == (table, key)
    assert f"[{table}]" in str(error)
    if key is not None:
        assert f"] {key}: " in str(error)


# --- a valid file --------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MOUNT))
    server = config.server
    assert server.bind == (Bind("tcp", host="127.0.0.1", port=8000),)
    assert (server.workers, server.log_level, server.access_log) == (1, "info", True)
    assert (server.keep_alive_timeout, server.graceful_timeout) == (5.0, 30.0)
    assert (server.max_header_bytes, server.max_target_bytes) == (16384, 8192)
    assert server.pythonpath == (str(tmp_path),)
    (mount,) = config.mounts
    assert mount == MountConfig(
        prefix="/",
        app="site.wsgi:application",
        threads=DEFAULT_WSGI_THREADS,
        max_queue=DEFAULT_WSGI_MAX_QUEUE,
    )
    assert (mount.interface, mount.lifespan, mount.max_body_bytes) == ("auto", "auto", 100 << 20)


def test_design_example(tmp_path: Path) -> None:
    text = """
[server]
bind = ["127.0.0.1:8000", "[::1]:8000", "unix:/run/gateway.sock", "fd://3"]
workers = 2
log_level = "DEBUG"
access_log = false
keep_alive_timeout = 2
graceful_timeout = 0.5

[[mount]]
prefix = "/api/"
app = "newsite.main:app"
interface = "asgi"

[[mount]]
prefix = "/"
app = "oldsite.wsgi:create_app()"
interface = "wsgi"
threads = 32
lifespan = "off"
max_body_bytes = 0
"""
    path = write(tmp_path, text)
    config = load_config(path)
    assert config.path == str(path)
    assert [str(b) for b in config.server.bind] == [
        "127.0.0.1:8000",
        "[::1]:8000",
        "unix:/run/gateway.sock",
        "fd://3",
    ]
    assert config.server.log_level == "debug"
    assert config.server.keep_alive_timeout == 2.0
    assert isinstance(config.server.keep_alive_timeout, float)
    api, root = config.mounts
    assert (api.prefix, api.interface, api.threads) == ("/api", "asgi", None)
    assert (root.prefix, root.threads, root.lifespan, root.max_body_bytes) == ("/", 32, "off", 0)


def test_a_single_bind_string_is_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[server]\nbind = "0.0.0.0:80"\n' + MOUNT))
    assert config.server.bind == (Bind("tcp", host="0.0.0.0", port=80),)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("/", "/"),
        ("/api", "/api"),
        ("/api/", "/api"),
        ("/a/b/", "/a/b"),
        ("/caf\u00e9", "/caf\u00e9"),
    ],
)
def test_prefix_normalisation(tmp_path: Path, given: str, stored: str) -> None:
    config = load_config(write(tmp_path, f'[[mount]]\nprefix = "{given}"\napp = "m:a"\n'))
    assert config.mounts[0].prefix == stored


def test_pythonpath_is_resolved_against_the_file_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path, '[server]\npythonpath = [".", "src", "../lib", "/opt/x"]\n' + MOUNT)
    path = path.rename(tmp_path / "conf" / "gateway.toml")
    monkeypatch.chdir(tmp_path)  # a relative path given on the command line
    config = load_config(os.path.join("conf", "gateway.toml"))
    conf = str(tmp_path / "conf")
    assert config.path == os.path.join("conf", "gateway.toml")
    assert config.server.pythonpath == (conf, f"{conf}/src", str(tmp_path / "lib"), "/opt/x")


def test_loading_imports_nothing(tmp_path: Path) -> None:
    text = '[[mount]]\nprefix = "/"\napp = "no_such_module_xyz.sub:factory()"\n'
    config = load_config(write(tmp_path, text))
    assert config.mounts[0].app == "no_such_module_xyz.sub:factory()"
    assert "no_such_module_xyz" not in sys.modules


def test_dataclasses_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MOUNT))
    targets: list[object] = [config, config.server, config.mounts[0], config.server.bind[0]]
    for target in targets:
        field = dataclasses.fields(target)[0].name  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(target, field, None)
    assert isinstance(config.mounts, tuple) and isinstance(config.server.bind, tuple)


def test_parse_config_matches_load_config(tmp_path: Path) -> None:
    path = write(tmp_path, MOUNT)
    assert parse_config(MOUNT, str(path)) == load_config(path)
    assert isinstance(load_config(path), Config)


# --- bind addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bind", "canonical"),
    [
        ("127.0.0.1:8000", Bind("tcp", host="127.0.0.1", port=8000), "127.0.0.1:8000"),
        ("0.0.0.0:0", Bind("tcp", host="0.0.0.0", port=0), "0.0.0.0:0"),
        ("localhost:65535", Bind("tcp", host="localhost", port=65535), "localhost:65535"),
        ("[::1]:8000", Bind("tcp", host="::1", port=8000), "[::1]:8000"),
        ("[0:0::1]:80", Bind("tcp", host="::1", port=80), "[::1]:80"),
        ("[::]:443", Bind("tcp", host="::", port=443), "[::]:443"),
        (
            "unix:/run/gateway.sock",
            Bind("unix", path="/run/gateway.sock"),
            "unix:/run/gateway.sock",
        ),
        ("unix:rel.sock", Bind("unix", path="rel.sock"), "unix:rel.sock"),
        ("fd://3", Bind("fd", fd=3), "fd://3"),
        ("fd://0", Bind("fd", fd=0), "fd://0"),
    ],
)
def test_parse_bind(text: str, bind: Bind, canonical: str) -> None:
    assert parse_bind(text) == bind
    assert str(parse_bind(text)) == canonical
    assert parse_bind(str(bind)) == bind  # the canonical form reads back


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("127.0.0.1", "missing port"),
        ("[::1]", "missing port"),
        ("localhost:", "port must be"),
        ("localhost:http", "port must be"),
        ("localhost:65536", "port must be"),
        ("localhost:-1", "port must be"),
        ("localhost:\u0668\u0660", "port must be"),  # Arabic-Indic digits
        (":8000", "missing host"),
        ("9000", r"missing host \(write 127\.0\.0\.1:9000 .* or 0\.0\.0\.0:9000"),  # point 14
        ("::1:8000", "needs brackets"),
        ("[nope]:80", "not an IPv6 address"),
        ("300.1.1.1:80", "not an IPv4 address"),
        ("bad_host:80", "not a valid host name"),
        ("http://127.0.0.1:80", "unknown scheme"),
        ("tcp://127.0.0.1:80", "unknown scheme"),
        ("unix:", "empty unix socket path"),
        ("fd://x", "descriptor number"),
        ("fd://-1", "descriptor number"),
        ("fd://", "descriptor number"),
    ],
)
def test_parse_bind_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_bind(text)


def test_bad_bind_in_file(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[server]\nbind = ["127.0.0.1:80", "fd://x"]\n' + MOUNT)
    assert_names(error, "server", "bind")
    assert "fd://x" in error.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("[]", "at least one bind address"),
        ('["a:1", "a:1"]', "listed twice"),
        ('["[::1]:80", "[0::1]:80"]', "listed twice"),
        ('[""]', "must not be empty"),
        ("[8000]", "expected an array of strings"),
        ("8000", "expected an array of strings"),
    ],
)
def test_bind_list_rejects(tmp_path: Path, value: str, reason: str) -> None:
    error = load_error(tmp_path, f"[server]\nbind = {value}\n" + MOUNT)
    assert_names(error, "server", "bind")
    assert reason in error.reason


# --- errors: file, syntax, structure -------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_config(path)
    assert caught.value.file == str(path)
    assert_names(caught.value, "top level", None)


def test_toml_syntax_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[server\nworkers = 1\n")
    assert_names(error, "top level", None)
    assert "not valid TOML" in error.reason and "line 1" in error.reason


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n" + MOUNT.encode())
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_unknown_top_level_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[servers]\nworkers = 2\n" + MOUNT)
    assert_names(error, "top level", "servers")
    assert "did you mean 'server'" in error.reason


def test_setting_above_the_tables_is_pointed_to_its_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, "workers = 2\n" + MOUNT)
    assert_names(error, "top level", "workers")
    assert "[server]" in error.reason


def test_unknown_key_in_server(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[server]\nworker = 2\n" + MOUNT)
    assert_names(error, "server", "worker")
    assert "did you mean 'workers'" in error.reason


def test_unknown_key_in_mount(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT + MOUNT.replace('"/"', '"/x"') + "thread = 4\n")
    assert_names(error, "mount #2", "thread")


def test_server_must_be_a_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, "server = 1\n" + MOUNT)
    assert_names(error, "top level", "server")
    assert "must be a table" in error.reason


@pytest.mark.parametrize(
    "text", ['[mount]\nprefix = "/"\napp = "m:a"\n', 'mount = "x"\n', "mount = [1, 2]\n"]
)
def test_mount_must_be_an_array_of_tables(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert_names(error, "top level", "mount")
    assert "[[mount]]" in error.reason


@pytest.mark.parametrize("text", ["", "[server]\nworkers = 1\n", "mount = []\n"])
def test_no_mounts(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert_names(error, "top level", "mount")
    assert "at least one" in error.reason


@pytest.mark.parametrize("missing", ["prefix", "app"])
def test_missing_required_key(tmp_path: Path, missing: str) -> None:
    lines = {"prefix": 'prefix = "/"', "app": 'app = "m:a"'}
    del lines[missing]
    error = load_error(tmp_path, "[[mount]]\n" + "\n".join(lines.values()) + "\n")
    assert_names(error, "mount #1", missing)
    assert "required" in error.reason


# --- errors: types and values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "line", "key"),
    [
        ("server", "workers = true", "workers"),
        ("server", 'workers = "2"', "workers"),
        ("server", "workers = 2.0", "workers"),
        ("server", 'access_log = "no"', "access_log"),
        ("server", "access_log = 0", "access_log"),
        ("server", "keep_alive_timeout = true", "keep_alive_timeout"),
        ("server", 'graceful_timeout = "30s"', "graceful_timeout"),
        ("server", "max_header_bytes = 1e5", "max_header_bytes"),
        ("server", 'pythonpath = "src"', "pythonpath"),
        ("server", "pythonpath = [1]", "pythonpath"),
        ("server", "log_level = 10", "log_level"),
        ("mount", "threads = true", "threads"),
        ("mount", 'threads = "8"', "threads"),
        ("mount", "max_body_bytes = 1.5", "max_body_bytes"),
        ("mount", "interface = 1", "interface"),
        ("mount", "lifespan = false", "lifespan"),
    ],
)
def test_wrong_type(tmp_path: Path, table: str, line: str, key: str) -> None:
    text = f"[server]\n{line}\n{MOUNT}" if table == "server" else f"{MOUNT}{line}\n"
    error = load_error(tmp_path, text)
    assert_names(error, "server" if table == "server" else "mount #1", key)
    assert error.reason.startswith("expected ")


def test_wrong_type_says_what_it_got(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT + "threads = true\n")
    assert error.reason == "expected an integer, got boolean true"


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ("workers = 0", "workers", ">= 1"),
        ("keep_alive_timeout = 0", "keep_alive_timeout", "> 0"),
        ("keep_alive_timeout = inf", "keep_alive_timeout", "finite"),
        ("graceful_timeout = -1", "graceful_timeout", ">= 0"),
        ("graceful_timeout = nan", "graceful_timeout", "finite"),
        ("max_header_bytes = 1023", "max_header_bytes", ">= 1024"),
        ("max_target_bytes = 255", "max_target_bytes", ">= 256"),
        ("header_timeout = 0", "header_timeout", "> 0"),
        ("body_timeout = -1", "body_timeout", "> 0"),
        ("limit_concurrency = -1", "limit_concurrency", ">= 0"),
        ("backlog = 0", "backlog", ">= 1"),
        ('pythonpath = [""]', "pythonpath", "empty"),
        ('log_level = "verbose"', "log_level", "debug, info, warning, error, critical"),
    ],
)
def test_bad_server_value(tmp_path: Path, line: str, key: str, reason: str) -> None:
    error = load_error(tmp_path, f"[server]\n{line}\n{MOUNT}")
    assert_names(error, "server", key)
    assert reason in error.reason


def test_zero_graceful_timeout_is_allowed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[server]\ngraceful_timeout = 0\n" + MOUNT))
    assert config.server.graceful_timeout == 0.0


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ("threads = 0", "threads", ">= 1"),
        ('interface = "rsgi"', "interface", "asgi, wsgi, auto"),
        ('lifespan = "yes"', "lifespan", "auto, on, off"),
        ("max_body_bytes = -1", "max_body_bytes", ">= 0"),
        ("max_queue = -1", "max_queue", ">= 0"),
    ],
)
def test_bad_mount_value(tmp_path: Path, line: str, key: str, reason: str) -> None:
    error = load_error(tmp_path, f"{MOUNT}{line}\n")
    assert_names(error, "mount #1", key)
    assert reason in error.reason


@pytest.mark.parametrize(
    "prefix",
    ["api", "", "/api?x=1", "/api#top", "/a//b", "//", "/my api", "/a\tb", "/a/../b", "/."],
)
def test_bad_prefix(tmp_path: Path, prefix: str) -> None:
    text = f'[[mount]]\nprefix = "{prefix}"\napp = "m:a"\n'
    error = load_error(tmp_path, text.replace("\t", "\\t"))
    assert_names(error, "mount #1", "prefix")


@pytest.mark.parametrize(
    "app",
    ["module", "module:", ":app", "a..b:app", "a.b:c.", "a:b()x", "a:b(1)", "1a:b", "class:x"],
)
def test_bad_app_reference(tmp_path: Path, app: str) -> None:
    error = load_error(tmp_path, f'[[mount]]\nprefix = "/"\napp = "{app}"\n')
    assert_names(error, "mount #1", "app")
    assert "module:attribute" in error.reason


@pytest.mark.parametrize("app", ["m:a", "pkg.mod:app", "pkg.mod:create_app()", "m:obj.attr"])
def test_good_app_reference(tmp_path: Path, app: str) -> None:
    config = load_config(write(tmp_path, f'[[mount]]\nprefix = "/"\napp = "{app}"\n'))
    assert config.mounts[0].app == app


def test_duplicate_prefix_after_normalisation(tmp_path: Path) -> None:
    text = MOUNT + '[[mount]]\nprefix = "/api"\napp = "m:a"\n'
    text += '[[mount]]\nprefix = "/api/"\napp = "m:b"\n'
    error = load_error(tmp_path, text)
    assert_names(error, "mount #3", "prefix")
    assert "mount #2" in error.reason


def test_threads_on_an_asgi_mount(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT + 'interface = "asgi"\nthreads = 4\n')
    assert_names(error, "mount #1", "threads")
    assert "WSGI" in error.reason


def test_max_queue_on_an_asgi_mount(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT + 'interface = "asgi"\nmax_queue = 4\n')
    assert_names(error, "mount #1", "max_queue")
    assert "WSGI" in error.reason


def test_body_buffer_bytes_on_an_asgi_mount(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT + 'interface = "asgi"\nbody_buffer_bytes = 4096\n')
    assert_names(error, "mount #1", "body_buffer_bytes")
    assert "WSGI" in error.reason


def test_slow_client_defaults(tmp_path: Path) -> None:
    """Issue 13, point 6: bodies up to 64 KiB are read before a WSGI app takes a thread,
    and a client that reads nothing for 30 s is cut."""
    config = load_config(write(tmp_path, MOUNT))
    assert config.server.send_timeout == 30.0
    assert config.mounts[0].body_buffer_bytes == 64 * 1024


def test_limits_defaults_and_values(tmp_path: Path) -> None:
    server = load_config(write(tmp_path, MOUNT)).server
    assert (server.header_timeout, server.body_timeout) == (10.0, 30.0)
    assert (server.limit_concurrency, server.backlog) == (0, LISTEN_BACKLOG)
    text = "[server]\nheader_timeout = 2\nlimit_concurrency = 50\nbacklog = 16\n"
    text += MOUNT + 'interface = "wsgi"\nmax_queue = 0\n'
    config = load_config(write(tmp_path, text))
    assert (config.server.header_timeout, config.server.limit_concurrency) == (2.0, 50)
    assert (config.server.backlog, config.mounts[0].max_queue) == (16, 0)


def test_lifespan_on_for_a_wsgi_mount(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT + 'interface = "wsgi"\nlifespan = "on"\n')
    assert_names(error, "mount #1", "lifespan")


def test_threads_default_depends_on_interface(tmp_path: Path) -> None:
    text = MOUNT + 'interface = "wsgi"\n'
    text += '[[mount]]\nprefix = "/a"\napp = "m:a"\ninterface = "asgi"\n'
    text += '[[mount]]\nprefix = "/b"\napp = "m:a"\n'
    wsgi, asgi, auto = load_config(write(tmp_path, text)).mounts
    assert (wsgi.threads, asgi.threads, auto.threads) == (10, None, 10)
    assert (wsgi.max_queue, asgi.max_queue, auto.max_queue) == (100, None, 100)


def test_the_pool_is_sized_by_the_config_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's defaults are applied once, by the config (issue 15, point 4): the worker
    builds the pool from what the config says, so a mount the config left without a size
    could not get a pool at all."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_mounts adds the pythonpath
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # and imports gw_pool_app
    (tmp_path / "gw_pool_app.py").write_text("def app(environ, start_response):\n    return []\n")
    text = '[[mount]]\nprefix = "/"\napp = "gw_pool_app:app"\ninterface = "wsgi"\n'
    (mount,) = load_mounts(load_config(write(tmp_path, text)))
    mount.loaded.close()
    assert mount.loaded.pool_size == DEFAULT_WSGI_THREADS
    assert isinstance(mount.loaded.app, WSGIAdapter)
    assert mount.loaded.app.max_queue == DEFAULT_WSGI_MAX_QUEUE
    unsized = dataclasses.replace(mount.config, threads=None, max_queue=None)
    with pytest.raises(AppLoadError, match="a WSGI app needs threads >= 1"):
        load_mounts(Config(path=str(tmp_path), server=ServerConfig(), mounts=(unsized,)))


# --- command-line overrides ----------------------------------------------------------------


def test_overrides_replace_file_values(tmp_path: Path) -> None:
    text = '[server]\nbind = ["127.0.0.1:1"]\nworkers = 4\nlog_level = "error"\n' + MOUNT
    overrides: dict[str, object] = {
        "bind": ["unix:/tmp/g.sock", "[::1]:9000"],
        "workers": 2,
        "log_level": "WARNING",
        "access_log": False,
    }
    server = load_config(write(tmp_path, text), overrides).server
    assert [str(b) for b in server.bind] == ["unix:/tmp/g.sock", "[::1]:9000"]
    assert (server.workers, server.log_level, server.access_log) == (2, "warning", False)


def test_none_overrides_mean_not_given(tmp_path: Path) -> None:
    overrides: dict[str, object] = {"bind": None, "workers": None, "log_level": None}
    server = load_config(write(tmp_path, "[server]\nworkers = 3\n" + MOUNT), overrides).server
    assert server.workers == 3


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("workers", 0, ">= 1"),
        ("workers", True, "expected an integer"),
        ("bind", ["localhost"], "missing port"),
        ("log_level", "loud", "one of"),
        ("access_log", "no", "true or false"),
        ("header_timeout", 1.0, "unknown command-line setting"),
        ("interface", "asgi", "applies to one app served without a mount file"),
        ("bogus", 1, "unknown command-line setting"),
    ],
)
def test_bad_override(tmp_path: Path, key: str, value: object, reason: str) -> None:
    error = load_error(tmp_path, MOUNT, {key: value})
    assert error.file == str(tmp_path / "gateway.toml") + " (command line)"
    assert_names(error, "server", key)
    assert reason in error.reason


def test_a_bad_file_value_is_reported_even_when_overridden(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[server]\nworkers = 0\n" + MOUNT, {"workers": 2})
    assert "(command line)" not in error.file


# --- derived views -------------------------------------------------------------------------


def test_cli_options_are_derived_from_the_fields() -> None:
    options = {option.flag: option for option in cli_options()}
    server = {o.flag: o for o in options.values() if o.table == "server"}
    assert list(server)[:4] == ["--bind", "--workers", "--log-level", "--no-access-log"]
    assert options["--bind"].aliases == ("-b",) and options["--workers"].aliases == ("-w",)
    assert options["--pythonpath"].aliases == ("--app-dir",)
    assert options["--keep-alive-timeout"].kind == "float"
    assert options["--log-level"].choices == ("debug", "info", "warning", "error", "critical")
    assert options["--http"].choices == ("auto", "h11", "httptools")
    server_fields = {f.name for f in dataclasses.fields(ServerConfig)}
    assert {o.setting for o in server.values()} <= server_fields
    assert [(o.flag, o.setting) for o in options.values() if o.table == "bind"] == [
        ("--host", "bind"),
        ("--port", "bind"),
    ]
    assert [o.flag for o in options.values() if o.table == "app"] == ["--interface", "--factory"]
    assert all(option.help for option in options.values())


def test_each_flag_has_an_environment_variable_derived_from_it() -> None:
    envs = {option.flag: option.env for option in cli_options()}
    assert envs["--port"] == "GATEWAY_PORT"
    assert envs["--workers"] == "GATEWAY_WORKERS"
    assert envs["--no-access-log"] == "GATEWAY_NO_ACCESS_LOG"
    assert envs["--max-requests-jitter"] == "GATEWAY_MAX_REQUESTS_JITTER"
    assert len(set(envs.values())) == len(envs)


def test_one_app_is_the_config_of_a_one_mount_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gateway serve main:app` goes through the mount file's own validation (point 1)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.toml").write_text(
        '[server]\nworkers = 2\n\n[[mount]]\nprefix = "/"\napp = "main:make()"\n'
        'interface = "wsgi"\n'
    )
    from_file = load_config(tmp_path / "one.toml")
    overrides = {"workers": 2, "interface": "wsgi", "factory": True}
    one_app = load_config("main:make", overrides)
    assert one_app.path == "main:make"
    assert one_app.mounts == from_file.mounts
    assert one_app.server == from_file.server


def test_one_app_options_are_validated_as_a_mount_table() -> None:
    with pytest.raises(ConfigError, match=r"\[mount #1\] interface: must be one of asgi, wsgi"):
        load_config("main:app", {"interface": "rsgi"})


def test_a_target_that_is_neither_a_file_nor_an_app_names_both(tmp_path: Path) -> None:
    error = load_error_of(str(tmp_path / "main.app"))
    assert "expected a mount file (a readable TOML file) or an app as module:attribute" in error


def load_error_of(target: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(target)
    return str(info.value)


def test_command_line_paths_are_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "gateway.toml"
    path.write_text(MOUNT)
    monkeypatch.chdir(tmp_path)
    config = load_config(path, {"pythonpath": ["src"], "certfile": "cert.pem"})
    assert config.server.pythonpath == (str(tmp_path / "src"),)
    assert config.server.certfile == str(tmp_path / "cert.pem")


# Each path setting, as the declarations mark it (path=True), and the settings it needs
# beside it to pass the cross-key rules (TLS files make sense only together).
PATHS = {
    (table, f.name): f.metadata["path"]
    for table, cls in (("server", ServerConfig), ("mount", MountConfig))
    for f in dataclasses.fields(cls)
}
COMPANIONS = {
    "keyfile": {"certfile": "/c.pem"},
    "ca_certs": {"certfile": "/c.pem", "client_cert": "required"},
}


def test_the_path_settings_are_declared() -> None:
    declared = [key for key, is_path in PATHS.items() if is_path]
    assert declared == [
        *[("server", key) for key in ("pythonpath", "pid", "chdir", "certfile", "keyfile")],
        ("server", "ca_certs"),
        ("mount", "static"),
        ("mount", "shadow_log"),
    ]


def test_enum_values_are_stored_as_members(tmp_path: Path) -> None:
    """The interface and the flags' kinds are enum members that mypy checks (issue 15,
    point 2); as StrEnums they still equal, print and parse as their text."""
    text = MOUNT + 'interface = "WSGI"\n[[mount]]\nprefix = "/a"\napp = "m:a"\n'
    wsgi, auto = load_config(write(tmp_path, text)).mounts
    assert (wsgi.interface == "wsgi", f"{auto.interface}") == (True, "auto")
    assert wsgi.interface is Interface.WSGI and auto.interface is Interface.AUTO
    assert all(type(option.kind) is OptionKind for option in cli_options())


def toml_line(key: str, value: object) -> str:
    return f"{key} = {value!r}".replace("'", '"')  # strings and lists of them


@pytest.mark.parametrize("table_key", [key for key, path in PATHS.items() if path])
def test_every_path_is_anchored_where_it_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table_key: tuple[str, str]
) -> None:
    """A path setting in the file is relative to the file, and on the command line to the
    working directory, whichever setting it is: one place anchors them
    (gateway/config/loader.py, rule "paths are anchored in one place")."""
    table, key = table_key
    (tmp_path / "etc").mkdir()
    (tmp_path / "shell").mkdir()
    monkeypatch.chdir(tmp_path / "shell")
    value: object = ["rel/x"] if key == "pythonpath" else "rel/x"
    lines = [toml_line(name, given) for name, given in COMPANIONS.get(key, {}).items()]
    lines.append(toml_line(key, value))
    if table == "server":
        text = "[server]\n" + "\n".join(lines) + "\n" + MOUNT
    elif key == "static":
        text = '[[mount]]\nprefix = "/s"\n' + lines[0] + "\n"
    else:  # shadow_log
        text = MOUNT + 'shadow = "b"\n' + lines[0] + '\n[[mount]]\nname = "b"\napp = "m:b"\n'
    path = tmp_path / "etc" / "gateway.toml"
    path.write_text(text)
    config = load_config(path)
    stored = getattr(config.server if table == "server" else config.mounts[0], key)
    in_file = str(tmp_path / "etc" / "rel" / "x")
    assert stored == ((in_file,) if key == "pythonpath" else in_file)
    if key in {option.setting for option in cli_options()}:  # it has a flag
        stored = getattr(load_config(path, {key: value}).server, key)
        typed = str(tmp_path / "shell" / "rel" / "x")
        assert stored == ((typed,) if key == "pythonpath" else typed)


@pytest.mark.parametrize(("given", "stored"), [("", ""), ("/", ""), ("/app/", "/app")])
def test_root_path(tmp_path: Path, given: str, stored: str) -> None:
    assert load_config(write(tmp_path, MOUNT), {"root_path": given}).server.root_path == stored


def test_a_root_path_must_be_a_path(tmp_path: Path) -> None:
    error = load_error(tmp_path, MOUNT, {"root_path": "app"})
    assert_names(error, "server", "root_path")


def test_describe_settings_covers_every_field() -> None:
    rows = list(describe_settings())
    expected = [("server", f.name) for f in dataclasses.fields(ServerConfig)]
    expected += [("mount", f.name) for f in dataclasses.fields(MountConfig)]
    assert [(row.table, row.key) for row in rows] == expected
    assert all(row.help and row.type and row.default for row in rows)
    by_key = {row.key: row for row in rows}
    assert by_key["bind"].default == '["127.0.0.1:8000"]'
    assert by_key["access_log"].default == "true"
    assert by_key["prefix"].default == "required, unless named"
    assert by_key["fallback_on"].default == "[404, 405]"
    assert by_key["threads"].default.startswith(str(DEFAULT_WSGI_THREADS))


def test_http_parser_choice(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[server]\nhttp = "h11"\n\n[[mount]]\nprefix = "/"\napp = "a:b"\n')
    assert load_config(path).server.http == "h11"
    path.write_text('[server]\nhttp = "h2"\n\n[[mount]]\nprefix = "/"\napp = "a:b"\n')
    with pytest.raises(ConfigError, match=r"\[server\] http: must be one of auto, h11, httptools"):
        load_config(path)


def test_readme_documents_every_setting() -> None:
    """The README's reference tables are generated from describe_settings(); keep them so."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for row in describe_settings():
        assert f"| `{row.key}` |" in readme, f"README lacks [{row.table}] {row.key}"
    for option in cli_options():
        assert option.flag in readme, f"README lacks {option.flag}"
