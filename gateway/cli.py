"""The command line: `gateway serve CONFIG`, `gateway check CONFIG`,
`gateway status CONFIG`, `--version`. CONFIG is a mount file, or one app as
"module:attribute" served at "/" (gateway/config/loader.py `app_config`).

Rules:
1. The flags that override the mount file are derived from the settings' declarations
   (gateway/config/options.py `cli_options`), never written out here a second time; so is
   each flag's environment variable (GATEWAY_ and the flag in upper snake case).
   Precedence: a flag, then the environment, then `--env-file`, then the mount file,
   then the default. A value from the environment passes the same validators.
2. Exit status (DESIGN §1): 0 clean stop, 1 configuration or usage error, 3 an app that
   failed to load or whose lifespan startup failed.
3. User-facing messages are one line on stderr, prefixed `gateway: `; no tracebacks for
   errors the user can fix.
4. A reader that closes our stdout early (`gateway status --json | head`) ends `check`
   and `status` quietly with status 0, as `ls | head` does: it had what it wanted.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from gateway import __version__, native, status
from gateway.config.loader import Config, load_config
from gateway.config.mount_table import MountConfig
from gateway.config.options import ENV_PREFIX, CliOption, bind_from_host_port, cli_options
from gateway.config.settings import OptionKind
from gateway.errors import ConfigError, GatewayError, StartupError
from gateway.logs import configure_logging
from gateway.process import reload
from gateway.process.launcher import serve
from gateway.process.mounts import load_mounts
from gateway.server import metrics
from gateway.server.tls import server_context

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
log = logging.getLogger("gateway.cli")
# What an environment variable of each kind of flag must hold, for its error message.
ENV_KINDS = {
    OptionKind.INT: "an integer",
    OptionKind.PORT: "an integer",
    OptionKind.FLOAT: "a number",
    OptionKind.BOOL_ON: "1, true, yes, on, 0, false, no or off",
    OptionKind.BOOL_OFF: "1, true, yes, on, 0, false, no or off",
}
SWITCHES = (OptionKind.BOOL_OFF, OptionKind.BOOL_ON)  # a flag without a value
NUMBERS = (OptionKind.INT, OptionKind.PORT, OptionKind.FLOAT)


def main(argv: Sequence[str] | None = None) -> int:
    native.compiled()  # asked now, while the package's folder is readable (gateway/native.py)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error; DESIGN §1 says 1
        return 0 if exc.code in (0, None) else 1
    try:
        if args.command == "status":
            config = load_config(args.config)
            return _until_the_reader_leaves(
                lambda: status.run(config, args.url, args.json, args.token)
            )
        if args.env_file:
            load_env_file(args.env_file)
        sources: dict[str, str] = {}
        overrides = _overrides(args, os.environ, sources)
        config = load_config(args.config, overrides=overrides)
        if args.command == "check":
            return _until_the_reader_leaves(lambda: check(config))
        configure_logging(config)
        _log_sources(config, overrides, sources)
        if config.server.reload:
            return reload.run(config, overrides)
        return serve(config, overrides)
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.exit_status


def _log_sources(config: Config, overrides: Mapping[str, object], sources: dict[str, str]) -> None:
    """At debug level, each setting the command line or the environment gave, as the
    server holds it, and where it came from (rule "the flags that override the mount
    file")."""
    for setting, source in sources.items():
        value = getattr(config.server, setting, overrides[setting])
        shown = [str(item) for item in value] if isinstance(value, tuple) else value
        log.debug("%s = %r (from %s)", setting, shown, source)


def _until_the_reader_leaves(command: Callable[[], int]) -> int:
    """Run a command that prints a report; a closed stdout ends it quietly (rule "a reader
    that closes our stdout early")."""
    try:
        exit_status = command()
        sys.stdout.flush()  # a reader that left shows here, not in the interpreter's exit
    except BrokenPipeError:
        # Python ignores SIGPIPE, so the closed pipe is an exception on write; stdout is
        # pointed at /dev/null so that the interpreter's final flush of what is still
        # buffered does not raise it again (Python's docs, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    return exit_status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Serve WSGI and ASGI apps side by side from one mount file."
    )
    parser.add_argument(
        "--version", action="version", version=f"gateway {__version__}, {native.form()}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve", help="serve the apps in a mount file, or one app (module:attribute)"
    )
    check_cmd = commands.add_parser(
        "check", help="validate a mount file, import every app, print the routing table"
    )
    for command in (serve_cmd, check_cmd):
        command.add_argument("config", help=TARGET_HELP)
        command.add_argument(
            "--env-file",
            help="read KEY=VALUE lines into the environment first (GATEWAY_* set the flags; "
            "variables already set win)",
        )
        for option in cli_options():
            _add_option(command, option)
    _add_status_command(commands)
    return parser


TARGET_HELP = 'the mount file (TOML), or one app served at "/": module:attribute'


def _add_status_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway status`: its options are not settings (rule "the flags that override the
    mount file"), so they are declared here."""
    status_cmd = commands.add_parser(
        "status",
        help="per-mount and per-route traffic, errors, latency, pools and verdicts of the "
        "running server",
    )
    status_cmd.add_argument("config", help="the mount file (TOML) the server runs")
    status_cmd.add_argument("--json", action="store_true", help="print JSON, not a table")
    status_cmd.add_argument(
        "--url",
        help="the admin listener's /status.json or the metrics endpoint's URL (default: "
        "admin_bind's, else the first bind + metrics_path)",
    )
    status_cmd.add_argument(
        "--token",
        default="",
        help="the admin listener's bearer token [env: GATEWAY_ADMIN_TOKEN]",
    )


def _add_option(parser: argparse.ArgumentParser, option: CliOption) -> None:
    flags = (option.flag, *option.aliases)
    # argparse %-formats help texts: a setting's own % (access_log_format's atoms) is text.
    help_text = f"{option.help} [env: {option.env}]".replace("%", "%%")
    dest = option.name
    if option.kind in SWITCHES:
        action = "store_false" if option.kind == OptionKind.BOOL_OFF else "store_true"
        parser.add_argument(*flags, dest=dest, action=action, default=None, help=help_text)
    elif option.kind == OptionKind.LIST:
        parser.add_argument(*flags, dest=dest, action="append", help=help_text)
    elif option.kind in NUMBERS:
        convert = float if option.kind == OptionKind.FLOAT else int
        parser.add_argument(*flags, dest=dest, type=convert, help=help_text)
    else:
        choices = option.choices or None
        parser.add_argument(*flags, dest=dest, choices=choices, help=help_text)


def _overrides(
    args: argparse.Namespace, environ: Mapping[str, str], sources: dict[str, str]
) -> dict[str, object]:
    """The settings the command line and the environment give, by setting name (rule "the
    flags that override the mount file"); `sources` learns where each came from, for the
    debug log."""
    values: dict[str, object] = {}
    # --host/--port and --bind name one thing: one of them typed beats all three in the
    # environment, or a GATEWAY_BIND would clash with a --port typed over it.
    typed_bind = any(
        getattr(args, o.name) is not None for o in cli_options() if o.setting == "bind"
    )
    for option in cli_options():
        value = getattr(args, option.name)
        source = option.flag
        from_env = not (typed_bind and option.setting == "bind")
        if value is None and from_env and option.env in environ:
            value, source = _from_env(option, environ[option.env]), option.env
        if value is not None and option.kind == OptionKind.LIST and option.split_commas:
            value = [item for entry in value for item in _split_commas(entry)]
        if value is not None:
            values[option.name] = value
            sources[option.setting if option.table != "bind" else option.name] = source
    return _settings(values, args.config, sources)


def _settings(values: dict[str, object], target: str, sources: dict[str, str]) -> dict[str, object]:
    """Flag names to setting names; --host/--port become one bind."""
    settings: dict[str, object] = {}
    for option in cli_options():
        if option.table != "bind" and option.name in values:
            settings[option.setting] = values[option.name]
    bind = bind_from_host_port(values.get("host"), values.get("port"), settings.get("bind"), target)
    if bind is not None:
        settings["bind"] = bind
    for part in ("host", "port"):
        if part in sources:
            sources.setdefault("bind", sources.pop(part))
    return settings


def _from_env(option: CliOption, text: str) -> object:
    """An environment variable's text as the flag's value would be."""
    try:
        if option.kind in SWITCHES:
            return _env_bool(text) == (option.kind == OptionKind.BOOL_ON)
        if option.kind == OptionKind.LIST:
            return _split_commas(text)
        if option.kind in (OptionKind.INT, OptionKind.PORT):
            return int(text)
        if option.kind == OptionKind.FLOAT:
            return float(text)
    except ValueError:
        wanted = ENV_KINDS.get(option.kind, option.kind)
        reason = f"expected {wanted}, got {text!r}"
        raise ConfigError(option.env, "environment", None, reason) from None
    return text


def _env_bool(text: str) -> bool:
    if text.strip().lower() in TRUE_WORDS:
        return True
    if text.strip().lower() in FALSE_WORDS:
        return False
    raise ValueError(text)


def _split_commas(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def load_env_file(path: str) -> None:
    """Put a file's KEY=VALUE lines into the environment, under variables already set
    (rule "the flags that override the mount file"). A GATEWAY_ name that no flag
    declares is a typo worth naming."""
    known = tuple(option.env for option in cli_options())
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "env file", None, f"cannot read it: {exc}") from exc
    for number, line in enumerate(lines, 1):
        key, value = _env_line(line, path, number)
        if key.startswith(ENV_PREFIX) and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(path, "env file", key, f"line {number}: no such setting{hint}")
        if key:
            os.environ.setdefault(key, value)


def _env_line(line: str, path: str, number: int) -> tuple[str, str]:
    """("", "") for a blank line or a comment; `export K=V` and quoted values as a
    shell (and docker's --env-file) would read them."""
    text = line.strip()
    if not text or text.startswith("#"):
        return "", ""
    key, sep, value = text.removeprefix("export ").partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(path, "env file", None, f"line {number}: expected KEY=VALUE")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return key, value


def _describe_links(mounts: Sequence[MountConfig]) -> list[str]:
    """A line per mount that has a name or sends requests to another mount."""
    lines = []
    for mount in mounts:
        parts = [f"name {mount.name}"] if mount.name and mount.prefix else []
        if mount.fallback:
            statuses = ", ".join(str(status) for status in mount.fallback_on)
            parts.append(f"fallback -> {mount.fallback} on {statuses}")
        if mount.canary:
            how = f"sticky {mount.canary_sticky}"
            if mount.canary_header:
                how += f", forced by {mount.canary_header}"
            parts.append(f"canary {mount.canary_percent:g}% -> {mount.canary} ({how})")
        if mount.shadow:
            how = ", ".join(mount.shadow_methods)
            if mount.shadow_share < 100:
                how += f"; share {mount.shadow_share:g}% by hash"
            if mount.shadow_denoise:
                how += f"; denoise {mount.shadow_denoise_percent:g}%"
            parts.append(f"shadow {mount.shadow_percent:g}% -> {mount.shadow} ({how})")
        if parts:
            lines.append(f"  {mount.label}: " + "; ".join(parts))
    return ["targets:", *lines] if lines else []


def check(config: Config) -> int:
    """Import every app and print the routing table (exit 0), or why not (exit 1)."""
    server_context(config)  # TLS files that do not load: a ConfigError, exit 1
    metrics.require(config.server)  # metrics or admin_bind without prometheus_client: exit 1
    try:
        mounts = load_mounts(config)
    except StartupError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    print(f"config:   {config.path}")
    if config.server.admin_bind is not None:  # issue 17, point 1
        print(f"admin:    {config.server.admin_bind} (plain HTTP: /, /metrics, /status.json)")
    rows = [("PREFIX", "INTERFACE", "APP", "POOL")]
    for mount in mounts:
        pool = str(mount.loaded.pool_size) if mount.loaded.pool_size else "-"
        prefix = mount.config.prefix or f"({mount.config.name})"  # a target only
        rows.append((prefix, mount.loaded.interface, mount.loaded.reference, pool))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for line in _describe_links([mount.config for mount in mounts]):
        print(line)
    for mount in mounts:
        mount.loaded.close()
    return 0
