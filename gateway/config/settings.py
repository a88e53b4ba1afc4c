"""How a setting is declared: one dataclass field that carries its whole declaration.

Rules:
1. Each setting is declared once, with `setting(...)`: its default, its validator
   (gateway/config/checks.py), its help text, whether it is a path, and (for those the
   command line may override) its flag (`Flag`). The tables that use it are
   gateway/config/server_table.py ([server]) and gateway/config/mount_table.py
   ([[mount]]); the loader, the CLI and the reference docs read the declarations from the
   fields' metadata and never repeat them.
2. A rule that spans several keys (`Rule`) is a function declared in the table's module,
   beside the settings it relates, and listed in that table's rules in the order the
   loader applies them; it names the key at fault and why (`Conflict`), and the loader
   adds the file and the table.
3. A path setting (`path=True`) is relative to the mount file when written there and to
   the working directory when typed on the command line; the loader anchors every such
   setting in one place (gateway/config/loader.py `_anchored`).
4. Layer 1: stdlib and gateway.config.checks (the type of a validator) only.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import MISSING, dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from gateway.config.checks import Check

T = TypeVar("T")


class OptionKind(StrEnum):
    """What a command-line flag takes, and so how argparse and the environment read it."""

    LIST = "list"  # repeatable; each use adds one value
    INT = "int"
    FLOAT = "float"
    STR = "str"
    CHOICE = "choice"  # one of the flag's choices
    BOOL_OFF = "bool-off"  # a switch that turns the setting off
    BOOL_ON = "bool-on"  # a switch that turns the setting on
    HOST = "host"  # half of one bind address (gateway/config/options.py BIND_PARTS)
    PORT = "port"  # the other half


@dataclass(frozen=True)
class Flag:
    """The command-line side of a setting; `help` defaults to the setting's own."""

    flag: str
    kind: OptionKind
    help: str = ""
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # the same flag under uvicorn's or gunicorn's name
    split_commas: bool = False  # a list flag that also takes "a,b", as gunicorn's do


def setting(
    default: Any,
    check: Check,
    help: str,
    cli: Flag | None = None,
    doc_default: str = "",
    path: bool = False,
) -> Any:
    """A dataclass field that carries its whole declaration in `metadata` (rule "each
    setting is declared once").

    `doc_default` replaces the rendered default in the reference where the literal one
    would mislead (threads: None stands for a value computed at load time). `path`
    marks a file or directory, anchored as rule "a path setting" says.
    """
    meta = {"help": help, "check": check, "cli": cli, "doc": doc_default, "path": path}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


class Conflict(NamedTuple):
    """A broken rule: the key it names and why; the loader adds the file and table."""

    key: str
    reason: str


Rule = Callable[[T, Set[str]], Conflict | None]
"""A rule that spans several keys (rule "a rule that spans several keys"): the table's
settings as loaded and the keys the table itself wrote (a default is no mistake), to a
Conflict or None."""
