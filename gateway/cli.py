"""The command line: `gateway serve CONFIG`, `gateway check CONFIG`,
`gateway status CONFIG`, `--version`.

Rules:
1. The flags that override the mount file are derived from the settings' declarations in
   gateway/config.py (`cli_options`), never written out here a second time.
2. Exit status (DESIGN §1): 0 clean stop, 1 configuration or usage error, 3 an app that
   failed to load or whose lifespan startup failed.
3. User-facing messages are one line on stderr, prefixed `gateway: `; no tracebacks for
   errors the user can fix.
4. A reader that closes our stdout early (`gateway status --json | head`) ends `check`
   and `status` quietly with status 0, as `ls | head` does: it had what it wanted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from gateway import __version__, metrics, reload, status
from gateway.config import CliOption, Config, MountConfig, cli_options, load_config
from gateway.errors import GatewayError, StartupError
from gateway.logs import configure_logging
from gateway.supervisor import serve
from gateway.tls import server_context
from gateway.worker import load_mounts


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error; DESIGN §1 says 1
        return 0 if exc.code in (0, None) else 1
    try:
        if args.command == "check":
            return _until_the_reader_leaves(lambda: check(load_config(args.config)))
        if args.command == "status":
            config = load_config(args.config)
            return _until_the_reader_leaves(lambda: status.run(config, args.url, args.json))
        overrides = _overrides(args)
        config = load_config(args.config, overrides=overrides)
        configure_logging(config)
        if config.server.reload:
            return reload.run(config, overrides)
        return serve(config, overrides)
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.exit_status


def _until_the_reader_leaves(command: Callable[[], int]) -> int:
    """Run a command that prints a report; a closed stdout ends it quietly (rule 4)."""
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
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve the apps in a mount file")
    serve_cmd.add_argument("config", help="the mount file (TOML)")
    for option in cli_options():
        _add_option(serve_cmd, option)
    check_cmd = commands.add_parser(
        "check", help="validate a mount file, import every app, print the routing table"
    )
    check_cmd.add_argument("config", help="the mount file (TOML)")
    _add_status_command(commands)
    return parser


def _add_status_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`gateway status`: its options are not settings (rule 1), so they are declared here."""
    status_cmd = commands.add_parser(
        "status", help="per-mount traffic, errors, latency and pools of the running server"
    )
    status_cmd.add_argument("config", help="the mount file (TOML) the server runs")
    status_cmd.add_argument("--json", action="store_true", help="print JSON, not a table")
    status_cmd.add_argument(
        "--url", help="the metrics endpoint's URL (default: the first bind + metrics_path)"
    )


def _add_option(parser: argparse.ArgumentParser, option: CliOption) -> None:
    dest = option.setting
    if option.kind == "bool-off":
        parser.add_argument(
            option.flag, dest=dest, action="store_false", default=None, help=option.help
        )
    elif option.kind == "bool-on":
        parser.add_argument(
            option.flag, dest=dest, action="store_true", default=None, help=option.help
        )
    elif option.kind == "list":
        parser.add_argument(option.flag, dest=dest, action="append", help=option.help)
    elif option.kind == "int":
        parser.add_argument(option.flag, dest=dest, type=int, help=option.help)
    else:
        parser.add_argument(
            option.flag, dest=dest, choices=option.choices or None, help=option.help
        )


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    values = {option.setting: getattr(args, option.setting) for option in cli_options()}
    return {name: value for name, value in values.items() if value is not None}


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
            methods = ", ".join(mount.shadow_methods)
            parts.append(f"shadow {mount.shadow_percent:g}% -> {mount.shadow} ({methods})")
        if parts:
            lines.append(f"  {mount.prefix or mount.name}: " + "; ".join(parts))
    return ["targets:", *lines] if lines else []


def check(config: Config) -> int:
    """Import every app and print the routing table (exit 0), or why not (exit 1)."""
    server_context(config)  # TLS files that do not load: a ConfigError, exit 1
    metrics.require(config.server)  # metrics_path without prometheus_client: exit 1
    try:
        mounts = load_mounts(config)
    except StartupError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    print(f"config:   {config.path}")
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
