"""The mount file: TOML in, a frozen, validated Config out (DESIGN §1).

Rules:
1. Config is inert data. Loading it imports no app and binds nothing; an app reference is
   checked for its shape only ("module:attribute"), never resolved.
2. What is checked is declared elsewhere, once: each key's validator with its setting
   (gateway/config/server_table.py, mount_table.py), the rules that span several keys
   beside them (SERVER_RULES, MOUNT_RULES), the links between mounts in
   gateway/config/links.py. This module applies them, in that order, and adds where.
3. Nothing is swallowed. An unknown key, a wrong type or a bad value raises `ConfigError`
   naming the file, the table ("server", "mount #N" 1-based, or "top level") and the key.
   A TOML bool is never accepted where a number is expected.
4. Command-line overrides pass through the same validators as the file.
5. Paths are anchored in one place (`_anchored`): a path setting (declared `path=True`)
   written in the file is relative to the file's directory, one typed on the command
   line to the working directory, where the shell user looks.
6. One app without a mount file (`gateway serve main:app`, `app_config`) and mounts
   given as mappings (`gateway.run(mounts=...)`, `mapping_config`) become the mapping a
   mount file would hold and pass the same validation: one code path.
7. Layer 1: stdlib, gateway.errors and gateway.config only; no asyncio, socket,
   threading or signal.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Collection, Mapping, Sequence, Set
from dataclasses import MISSING, Field, dataclass, fields, replace
from typing import Any, TypeVar

from gateway.config import checks, links
from gateway.config.mount_table import MOUNT_RULES, MountConfig, links_of, with_pool_defaults
from gateway.config.options import APP_OPTIONS, COMMAND_LINE, cli_options
from gateway.config.server_table import SERVER_RULES, ServerConfig
from gateway.config.settings import Rule
from gateway.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """A validated mount file."""

    path: str  # the mount file as given
    server: ServerConfig
    mounts: tuple[MountConfig, ...]


@dataclass(frozen=True)
class _Where:
    """Where a value came from, for the error message."""

    file: str
    table: str

    def fail(self, key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.file, self.table, key, reason)


def load_config(
    path: str | os.PathLike[str], overrides: Mapping[str, object] | None = None
) -> Config:
    """Read and validate a mount file, or make the one-mount config of an app reference
    ("main:app": see `is_app_reference`). Every failure is a ConfigError."""
    name = os.fspath(path)
    if is_app_reference(name):
        return app_config(name, overrides)
    top = _Where(name, "top level")
    try:
        with open(name, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise top.fail(None, _unreadable(name, exc)) from exc
    except UnicodeDecodeError as exc:
        raise top.fail(None, f"not UTF-8 text: {exc.reason}") from exc
    return parse_config(text, name, overrides)


def is_app_reference(target: str) -> bool:
    """`gateway serve TARGET` serves one app when TARGET is not a file and looks like
    "module:attribute" (or "module:factory()"); a name ending in .toml is always a file."""
    if target.endswith(".toml") or os.path.isfile(target):
        return False
    try:
        checks.app_reference(target)
    except checks.Invalid:
        return False
    return True


def _unreadable(name: str, exc: OSError) -> str:
    """Why a target could not be read; one that is not a file may have meant an app."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError) and not name.endswith(".toml"):
        return (
            f"expected a mount file (a readable TOML file) or an app as module:attribute "
            f"(e.g. main:app); this is neither: {reason}"
        )
    return f"cannot read the mount file: {reason}"


def app_config(reference: str, overrides: Mapping[str, object] | None = None) -> Config:
    """The config of one app served at "/" with no mount file (`gateway serve main:app`):
    the mapping a one-mount file would hold, through the same validation. Its options
    (APP_OPTIONS: --interface, --factory) come with the command-line overrides; relative
    paths are anchored at the current directory, where the file would have been."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    options = {option.setting for option in APP_OPTIONS}
    where = _Where(reference + COMMAND_LINE, "mount #1")
    mount: dict[str, object] = {"prefix": "/", "app": reference}
    if "interface" in given:
        mount["interface"] = given["interface"]
    if "factory" in given and _check_factory(given["factory"], where):
        mount["app"] = reference if reference.endswith("()") else reference + "()"
    server = {key: value for key, value in given.items() if key not in options}
    return _from_data({"mount": [mount]}, reference, server)


def _check_factory(value: object, where: _Where) -> bool:
    try:
        return checks.boolean(value)
    except checks.Invalid as exc:
        raise where.fail("factory", str(exc)) from None


def parse_config(text: str, path: str, overrides: Mapping[str, object] | None = None) -> Config:
    """Validate mount-file text; `path` names it in errors and anchors relative paths."""
    top = _Where(path, "top level")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise top.fail(None, f"not valid TOML: {exc}") from exc
    for option in APP_OPTIONS:
        if (overrides or {}).get(option.setting) is not None:
            reason = f"{option.flag} applies to one app served without a mount file"
            raise _Where(path + COMMAND_LINE, "server").fail(option.setting, reason)
    return _from_data(data, path, overrides or {})


def mapping_config(
    mounts: Sequence[Mapping[str, object]], name: str, overrides: Mapping[str, object]
) -> Config:
    """The config of [[mount]] tables given as mappings (`gateway.run(mounts=[...])`),
    with [server] settings as overrides: the mount file's validation, `name` in errors."""
    if not isinstance(mounts, list | tuple) or not all(isinstance(m, Mapping) for m in mounts):
        raise _Where(name, "top level").fail("mount", "must be a list of mappings, one per mount")
    return _from_data({"mount": [dict(mount) for mount in mounts]}, name, overrides)


def _from_data(data: dict[str, Any], path: str, overrides: Mapping[str, object]) -> Config:
    """A Config from parsed TOML (or the mapping `app_config` makes)."""
    top = _Where(path, "top level")
    _reject_unknown_top_level(data, top)
    server = _load_server(data.get("server", {}), path, overrides)
    return Config(path=path, server=server, mounts=_load_mounts(data, top))


def _load_server(table: object, path: str, overrides: Mapping[str, object]) -> ServerConfig:
    where = _Where(path, "server")
    if not isinstance(table, dict):
        raise _Where(path, "top level").fail("server", "must be a table: write [server]")
    server = _anchored(_build(ServerConfig, table, where), _directory_of(path))
    server = _apply_overrides(server, overrides, _Where(path + COMMAND_LINE, "server"))
    _check_rules(SERVER_RULES, server, table.keys(), where)
    return server


def _apply_overrides(
    server: ServerConfig, overrides: Mapping[str, object], where: _Where
) -> ServerConfig:
    # A None value means "flag not given", so the CLI can pass its namespace as it is.
    given = {key: value for key, value in overrides.items() if value is not None}
    settable = tuple(option.setting for option in cli_options() if option.table == "server")
    _reject_unknown(given, settable, where, "command-line setting")
    checked = {
        f.name: _check(f, given[f.name], where) for f in fields(ServerConfig) if f.name in given
    }
    # A path typed on the command line is relative to the shell's directory (rule "paths
    # are anchored in one place").
    return _anchored(replace(server, **checked), os.getcwd(), checked.keys())


def _anchored(settings: T, base: str, keys: Collection[str] | None = None) -> T:
    """`settings` (a dataclass of them) with its path settings, or those among `keys`,
    made absolute against `base` (rule "paths are anchored in one place"), so that they
    mean the same after `chdir`. "" (none) stays; an absolute path only loses its "..", as
    normpath does."""
    anchored: dict[str, Any] = {}
    for f in fields(settings):  # type: ignore[arg-type]  # T is always one of the dataclasses
        value = getattr(settings, f.name)
        if not f.metadata["path"] or (keys is not None and f.name not in keys) or not value:
            continue
        if isinstance(value, tuple):
            anchored[f.name] = tuple(os.path.normpath(os.path.join(base, v)) for v in value)
        else:
            anchored[f.name] = os.path.normpath(os.path.join(base, value))
    return replace(settings, **anchored)  # type: ignore[type-var]  # as above


def _directory_of(path: str) -> str:
    """Where the mount file's relative paths start (rule "paths are anchored in one
    place"). An app reference or a `gateway.run()` name is no file: it stands where one
    would be, the working directory."""
    return os.path.dirname(os.path.abspath(path))


def _load_mounts(data: dict[str, Any], top: _Where) -> tuple[MountConfig, ...]:
    tables = data.get("mount", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise top.fail("mount", "must be an array of tables: write [[mount]] for each mount")
    if not tables:
        raise top.fail("mount", "at least one [[mount]] table is required")
    mounts = tuple(_load_mount(t, _Where(top.file, f"mount #{n}")) for n, t in enumerate(tables, 1))
    _reject_duplicate_prefixes(mounts, top.file)
    nodes = [links.Node(f"mount #{n}", m.name, links_of(m)) for n, m in enumerate(mounts, 1)]
    links.check_links(top.file, nodes)
    return mounts


def _load_mount(table: dict[str, Any], where: _Where) -> MountConfig:
    """One [[mount]] table: each key checked, the paths anchored at the file, the rules
    that span several keys held, and a WSGI pool's defaults filled in."""
    mount = _anchored(_build(MountConfig, table, where), _directory_of(where.file))
    _check_rules(MOUNT_RULES, mount, table.keys(), where)
    return with_pool_defaults(mount)


def _check_rules(rules: Sequence[Rule[T]], settings: T, given: Set[str], where: _Where) -> None:
    """Raise the first broken rule's Conflict as a ConfigError (rule "what is checked is
    declared elsewhere")."""
    for rule in rules:
        conflict = rule(settings, given)
        if conflict is not None:
            raise where.fail(conflict.key, conflict.reason)


def _reject_duplicate_prefixes(mounts: tuple[MountConfig, ...], file: str) -> None:
    first_seen: dict[str, int] = {}
    for number, mount in enumerate(mounts, 1):
        if not mount.prefix:
            continue  # a target only (named)
        if mount.prefix in first_seen:
            reason = f"{mount.prefix!r} is already the prefix of mount #{first_seen[mount.prefix]}"
            raise ConfigError(file, f"mount #{number}", "prefix", reason)
        first_seen[mount.prefix] = number


def _build(cls: type[T], table: dict[str, Any], where: _Where) -> T:
    """Check every key of `table` against the fields of dataclass `cls`; build it."""
    declared = fields(cls)  # type: ignore[arg-type]  # T is always one of the dataclasses
    _reject_unknown(table, tuple(f.name for f in declared), where, "key")
    for f in declared:
        if f.default is MISSING and f.name not in table:
            raise where.fail(f.name, "required key is missing")
    return cls(**{f.name: _check(f, table[f.name], where) for f in declared if f.name in table})


def _check(f: Field[Any], value: object, where: _Where) -> Any:
    try:
        return f.metadata["check"](value)
    except checks.Invalid as exc:
        raise where.fail(f.name, str(exc)) from None


def _reject_unknown_top_level(data: dict[str, Any], top: _Where) -> None:
    for key in data:
        # A setting written above [server] or [[mount]] lands at the top level: say so.
        if key in {f.name for f in fields(ServerConfig)}:
            raise top.fail(key, "unknown top-level key; it belongs in [server]")
        if key in {f.name for f in fields(MountConfig)}:
            raise top.fail(key, "unknown top-level key; it belongs in a [[mount]] table")
    _reject_unknown(data, ("server", "mount"), top, "table")


def _reject_unknown(
    table: Mapping[str, object], known: tuple[str, ...], where: _Where, what: str
) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise where.fail(key, f"unknown {what}{hint}")
