"""What is derived from the settings' declarations: the command-line flags, their
environment variables and the reference documentation.

Rules:
1. Nothing here is declared a second time. A [server] setting with a `Flag` becomes a
   `CliOption` (`cli_options`); its environment variable is ENV_PREFIX and the flag in
   upper snake case (`CliOption.env`); every setting becomes a row of the README's
   reference (`describe_settings`).
2. The only flags that are not a setting's are the halves of one bind address
   (BIND_PARTS: uvicorn's --host and --port) and the options of one app served without
   a mount file (APP_OPTIONS), which a [[mount]] table would hold; they are declared
   here once, and pass the same validators as the file.
3. Layer 1: stdlib, gateway.asgi, gateway.errors and gateway.config only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields

from gateway.asgi import DECLARED_INTERFACES
from gateway.config.mount_table import MountConfig
from gateway.config.server_table import ServerConfig
from gateway.config.settings import Flag, OptionKind
from gateway.errors import ConfigError

COMMAND_LINE = " (command line)"
"""Appended to the file name in errors about command-line overrides."""


ENV_PREFIX = "GATEWAY_"
"""Every flag's environment variable is this prefix and the flag in upper snake case."""


@dataclass(frozen=True)
class CliOption:
    """A command-line flag derived from a setting's declaration."""

    setting: str  # field name in ServerConfig, e.g. "bind"; or an APP_OPTIONS name
    flag: str  # "--bind"
    help: str
    kind: OptionKind
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # the same flag under uvicorn's or gunicorn's name
    split_commas: bool = False  # a list flag that also takes "a,b", as gunicorn's do
    # "server": a ServerConfig field; "app": one-app mode's mount (APP_OPTIONS);
    # "bind": --host/--port, which make one bind address
    table: str = "server"

    @property
    def name(self) -> str:
        """The flag as an identifier: "--no-access-log" is "no_access_log"."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        """Its environment variable: "--port" is GATEWAY_PORT."""
        return ENV_PREFIX + self.name.upper()


@dataclass(frozen=True)
class SettingDoc:
    """One row of the settings reference (README)."""

    table: str  # "server" or "mount"
    key: str
    type: str
    default: str
    help: str


# --host and --port (uvicorn's) make one bind address together; with --bind they are a
# usage error (`bind_from_host_port`). uvicorn's defaults for the half not given.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
BIND_PARTS = (
    CliOption(
        "bind",
        "--host",
        f"host to listen on (default {DEFAULT_HOST})",
        OptionKind.HOST,
        table="bind",
    ),
    CliOption(
        "bind",
        "--port",
        f"port to listen on (default {DEFAULT_PORT})",
        OptionKind.PORT,
        table="bind",
    ),
)
# One app served without a mount file (`gateway serve main:app`, `app_config`): the
# settings of its one mount that a [[mount]] table would hold, validated as that table's.
APP_OPTIONS = (
    CliOption(
        "interface",
        "--interface",
        "one app: asgi, wsgi or auto (detect)",
        OptionKind.CHOICE,
        tuple(str(interface) for interface in DECLARED_INTERFACES),  # argparse shows repr()
        table="app",
    ),
    CliOption(
        "factory",
        "--factory",
        "one app: the attribute is a factory; serve what calling it returns",
        OptionKind.BOOL_ON,
        table="app",
    ),
)


def bind_from_host_port(host: object, port: object, bind: object, file: str) -> object:
    """The bind that --host/--port make (None when neither is given); with --bind too,
    a ConfigError: the two ways of naming the address would contradict each other."""
    if host is None and port is None:
        return bind
    if bind is not None:
        reason = "--host/--port and --bind both name the address to listen on; use one"
        raise ConfigError(file + COMMAND_LINE, "server", "bind", reason)
    host = DEFAULT_HOST if host is None else host
    port = DEFAULT_PORT if port is None else port
    shown = f"[{host}]" if isinstance(host, str) and ":" in host else str(host)
    return [f"{shown}:{port}"]


def cli_options() -> tuple[CliOption, ...]:
    """The command-line flags, derived from the settings that declare one, then the
    halves of a bind (BIND_PARTS) and one-app mode's options (APP_OPTIONS)."""
    options = []
    for f in fields(ServerConfig):
        flag: Flag | None = f.metadata["cli"]
        if flag is not None:
            help_text = flag.help or f.metadata["help"]
            option = CliOption(
                f.name,
                flag.flag,
                help_text,
                flag.kind,
                flag.choices,
                flag.aliases,
                flag.split_commas,
            )
            options.append(option)
    return (*options, *BIND_PARTS, *APP_OPTIONS)


def describe_settings() -> Iterator[SettingDoc]:
    """One row per setting, in file order, for the README's reference table."""
    for table, cls in (("server", ServerConfig), ("mount", MountConfig)):
        for f in fields(cls):
            default = f.metadata["doc"] or _render_default(f.default)
            kind = _TOML_TYPES[str(f.type)]
            yield SettingDoc(table, f.name, kind, default, f.metadata["help"])


# Annotations (strings under `from __future__ import annotations`) as a TOML user reads them.
_TOML_TYPES = {
    "tuple[Bind, ...]": "array of strings",
    "Bind | None": "string",
    "tuple[str, ...]": "array of strings",
    "tuple[int, ...]": "array of integers",
    "int": "integer",
    "int | None": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "Interface": "string",
}


def _render_default(value: object) -> str:
    """A default as it would be written in TOML."""
    if value is MISSING:
        return "required"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        items = (item if isinstance(item, int) else str(item) for item in value)
        return "[" + ", ".join(_render_default(item) for item in items) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)
