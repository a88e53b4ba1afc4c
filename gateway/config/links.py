"""The links between mounts: keys such as `fallback` and `canary` name another mount.

Rules:
1. A mount's `name` is unique in the file.
2. A link names a mount by its `name`. An unknown name, or a mount that names itself,
   is a ConfigError on the table and key where the link starts, naming the other end.
3. Links never loop. Any link may send a request on (a fallback's target may have a
   canary of its own), so a loop (A falls back to B, B's canary is A) could pass one
   request round forever: a ConfigError on the mount where the loop is first found,
   with the whole path.
4. Layer 1: gateway.errors only; the config hands in plain data (Node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import ConfigError


@dataclass(frozen=True)
class Node:
    """One mount, as far as links go."""

    table: str  # "mount #2", for the error message
    name: str  # "" for a mount without one
    links: tuple[tuple[str, str], ...]  # (key, the name it gives), in key order


def check_links(file: str, nodes: Sequence[Node]) -> None:
    """Raise ConfigError for a duplicate name, an unknown or self reference, or a loop."""
    by_name = _index(file, nodes)
    for node in nodes:
        for key, target in node.links:
            if target == node.name:
                raise ConfigError(file, node.table, key, f"a mount cannot be its own {key}")
            if target not in by_name:
                known = ", ".join(repr(name) for name in by_name) or "none"
                reason = f"no mount is named {target!r} (names: {known})"
                raise ConfigError(file, node.table, key, reason)
    for node in nodes:
        _refuse_loop(file, node, by_name)


def _index(file: str, nodes: Sequence[Node]) -> dict[str, Node]:
    by_name: dict[str, Node] = {}
    for node in nodes:
        if node.name in by_name:
            reason = f"{node.name!r} is already the name of {by_name[node.name].table}"
            raise ConfigError(file, node.table, "name", reason)
        if node.name:
            by_name[node.name] = node
    return by_name


def _refuse_loop(file: str, start: Node, by_name: dict[str, Node]) -> None:
    """Depth first from `start` along every link; reaching `start` again is a loop."""
    # (node, the path that reached it, the link of `start` that path began with)
    stack: list[tuple[Node, str, tuple[str, str] | None]] = [(start, _label(start), None)]
    seen: set[str] = set()
    while stack:
        node, path, first = stack.pop()
        for key, target in node.links:
            step = f"{path} -{key}-> {_label(by_name[target])}"
            first_link = first or (key, target)
            if target == start.name:
                reason = f"{first_link[1]!r} leads back to this mount: {step}"
                raise ConfigError(file, start.table, first_link[0], reason)
            if target not in seen:
                seen.add(target)
                stack.append((by_name[target], step, first_link))


def _label(node: Node) -> str:
    return f"{node.name} ({node.table})"
