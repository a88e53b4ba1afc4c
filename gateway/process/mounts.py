"""A worker's mounts: each app imported (`load_mounts`), then built whole (`routed`):
its app behind the metrics middleware, its fallback and canary as the router's rules,
a routing mount's per-route recorder outermost, and its part in the lifespan fan-out.
The worker (gateway/process/worker.py) serves what this builds; `gateway check` and the
supervisor load mounts with it too.

Rules:
1. Loading imports every app in the mount file's order, with `pythonpath` first on
   sys.path; an app that fails to import is an AppLoadError that says what a ConfigError
   says (the file, the mount, the key) and the pythonpath searched.
2. Each mount is built whole, once, in the order its parts need: the app, the metrics
   middleware around it (with its WSGI pool, which loading found), then the Mount with
   its rules, which the Router links around all that, and, for a routing mount with
   metrics on, the per-route recorder outside everything
   (gateway/server/route_metrics.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from gateway.adapters import InterfaceMismatch, LoadedApp, load_app, load_static
from gateway.config.loader import Config
from gateway.config.mount_table import MountConfig
from gateway.errors import AppLoadError
from gateway.migration.rules import CanaryRule, FallbackRule, RoutingCounters
from gateway.routing.router import Mount, Rule
from gateway.server.lifespan import LifespanMount
from gateway.server.mount_metrics import WorkerMetrics


@dataclass
class LoadedMount:
    """A mount's settings next to the app they produced."""

    config: MountConfig
    loaded: LoadedApp


def use_pythonpath(config: Config) -> None:
    """Put `pythonpath` first on sys.path, where the apps and the hooks are looked for."""
    for entry in reversed(config.server.pythonpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def load_mounts(config: Config) -> list[LoadedMount]:
    """Import every app in the mount file (after putting `pythonpath` on sys.path); a
    static mount whose directory is missing fails like an app that does not import."""
    use_pythonpath(config)
    mounts = []
    for number, mount in enumerate(config.mounts, 1):
        try:
            mounts.append(LoadedMount(mount, _load_mount(mount)))
        except AppLoadError as exc:
            raise _in_context(exc, config, number, mount) from exc
    return mounts


def _load_mount(mount: MountConfig) -> LoadedApp:
    if mount.static:
        return load_static(mount.static)
    threads, max_queue = mount.threads, mount.max_queue  # defaulted by the config; None: ASGI
    label = mount.label  # names its pool threads and error lines
    return load_app(mount.app, mount.interface, threads, label, max_queue, mount.body_buffer_bytes)


def _in_context(exc: AppLoadError, config: Config, number: int, mount: MountConfig) -> AppLoadError:
    """`exc` with what a ConfigError says (the file, the mount and the key) and, when
    the app's code was looked for, the pythonpath it was looked for on."""
    named = f'prefix "{mount.prefix}"' if mount.prefix else f'name "{mount.name}"'
    where = f"mount #{number}, {named}"
    key = "static" if mount.static else "interface" if isinstance(exc, InterfaceMismatch) else "app"
    message = f"{config.path}: [{where}] {key}: {exc}"
    if key == "app":
        searched = ", ".join(config.server.pythonpath) or "(none)"
        message += f" (pythonpath searched: {searched})"
    return type(exc)(message)


def prefix_root(prefix: str) -> str:
    """What a routing mount adds to root_path (gateway/routing/router.py Mount.root)."""
    return "" if prefix == "/" else prefix


def routed(
    mount: LoadedMount,
    rules: list[Rule],
    metrics: WorkerMetrics | None,
    sides: dict[str, str] | None = None,
) -> Mount:
    """The Mount of a loaded app, built whole (rule "each mount is built whole"): its app
    behind the metrics middleware when metrics are on (counted under the mount's label,
    with its WSGI pool if it has one), and its `rules`, which the Router links around
    that once; a routing mount's per-route recorder outermost, when metrics are on
    (`sides`: gateway/migration/routes.py mount_sides)."""
    config, loaded = mount.config, mount.loaded
    app = loaded.app
    outer = None
    if metrics is not None:
        app = metrics.wrap(app, config.label, loaded.pool)
        if config.prefix:
            outer = metrics.routes.recorder(config.label, prefix_root(config.prefix), sides or {})
    max_body = config.max_body_bytes
    return Mount(
        config.prefix,
        app,
        max_body,
        loaded.interface,
        name=config.name,
        rules=rules,
        outer=outer,
    )


def mount_rules(config: MountConfig, metrics: RoutingCounters | None) -> list[Rule]:
    """The mount's fallback and canary as the router's rules (gateway/migration/rules.py),
    counted under its label when metrics are on."""
    rules: list[Rule] = []
    label = config.label  # the metrics' mount label
    if config.fallback:
        statuses = frozenset(config.fallback_on)
        body_bytes = config.fallback_body_bytes
        rules.append(FallbackRule(config.fallback, statuses, body_bytes, label, metrics))
    if config.canary:
        percent, sticky, header = config.canary_percent, config.canary_sticky, config.canary_header
        rules.append(CanaryRule(config.canary, percent, sticky, header, label, metrics))
    return rules


def lifespan_mount(mount: LoadedMount, route: Mount) -> LifespanMount:
    return LifespanMount(
        label=f"mount {route.label} ({mount.config.app})",
        app=mount.loaded.app,
        policy=mount.config.lifespan,
        supports_lifespan=mount.loaded.supports_lifespan,
        state=route.state,
    )
