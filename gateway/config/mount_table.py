"""A [[mount]] table: an app (or a directory of files) served under a path prefix, each
setting declared once (gateway/config/settings.py, rule "each setting is declared once"),
and the rules that span several keys.

Rules:
1. A setting's declaration is its field here: default, validator, help, and whether it
   is a path (anchored at the mount file).
2. MOUNT_RULES hold what one key means beside another: a mount needs a prefix or a
   name; a link's options need the link (LINK_OPTIONS); a mount runs an app or serves
   files, and the keys that configure app code (APP_ONLY_KEYS) do not apply to files;
   the keys of a WSGI pool (WSGI_ONLY_KEYS) do not apply to an ASGI app, nor lifespan
   "on" to a WSGI one. They apply in the order listed; the first broken one is reported.
3. A WSGI pool's size and queue default only where there can be a pool
   (`with_pool_defaults`): None on ASGI and static mounts, so nothing downstream applies
   a default a second time.
4. Layer 1: stdlib, gateway.asgi and gateway.config only.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, replace

from gateway.asgi import DECLARED_INTERFACES, Interface
from gateway.config import checks
from gateway.config.limits import (
    DEFAULT_WSGI_MAX_QUEUE,
    DEFAULT_WSGI_THREADS,
    FALLBACK_BODY_BYTES,
    MAX_BODY_BYTES,
    SHADOW_DROP_HEADERS,
    SHADOW_MAX_IN_FLIGHT,
    SHADOW_METHODS,
    WSGI_BODY_BUFFER_BYTES,
)
from gateway.config.settings import Conflict, Rule, setting

LIFESPAN_MODES = ("auto", "on", "off")
# Mount keys that configure app code (how to call it, its pool, its lifespan); a static
# mount runs none, so one of them there is a mistake worth naming.
APP_ONLY_KEYS = ("interface", "threads", "max_queue", "body_buffer_bytes", "lifespan")
# Mount keys that configure a WSGI app's pool and input; an ASGI app has neither.
WSGI_ONLY_KEYS = ("threads", "max_queue", "body_buffer_bytes")
# Keys whose value names another mount (gateway/config/links.py checks them), and the keys that
# mean something only beside each of them.
LINK_KEYS = ("fallback", "canary", "shadow")
LINK_OPTIONS = {
    "fallback": ("fallback_on", "fallback_body_bytes"),
    "canary": ("canary_percent", "canary_sticky", "canary_header"),
    "shadow": (
        "shadow_percent",
        "shadow_methods",
        "shadow_ignore_json_keys",
        "shadow_log",
        "shadow_max_in_flight",
        "shadow_drop_headers",
        "shadow_share",
        "shadow_denoise",
        "shadow_denoise_percent",
        "shadow_ignore_headers",
    ),
}


@dataclass(frozen=True)
class MountConfig:
    """One [[mount]] table: an app served under a path prefix."""

    # "" on a mount that is only another mount's target; it must have a name then.
    prefix: str = setting(
        "",
        checks.prefix,
        'path prefix on segment boundaries: "/api" serves /api/x, never /apix; without '
        "one, the mount serves only as another mount's fallback, canary or shadow",
        doc_default="required, unless named",
    )
    name: str = setting(
        "",
        checks.mount_name,
        "names the mount, for other mounts' fallback, canary and shadow keys",
    )
    # "" on static mounts: exactly one of app and static (_app_or_static).
    app: str = setting(
        "",
        checks.app_reference,
        '"module:attribute", or "module:factory()" to call a factory',
        doc_default="required, unless static",
    )
    static: str = setting(
        "",
        checks.directory,
        "serve the files under this directory (relative to this file) instead of an app",
        path=True,
    )
    # (setting() returns a dataclasses.field, which ruff cannot see through an enum type)
    interface: Interface = setting(  # noqa: RUF009
        Interface.AUTO,
        checks.member(DECLARED_INTERFACES),
        "asgi, wsgi or auto (detect; explicit is recommended)",
    )
    # None after loading only on ASGI and static mounts, which have no pool (rule "a WSGI
    # pool's size").
    threads: int | None = setting(
        None,
        checks.int_at_least(1),
        "WSGI only: this mount's thread pool size",
        doc_default=f"{DEFAULT_WSGI_THREADS} (WSGI mounts)",
    )
    # None after loading only on ASGI and static mounts, as for threads.
    max_queue: int | None = setting(
        None,
        checks.int_at_least(0),
        "WSGI only: requests that may wait for a free thread; past it: 503 with Retry-After",
        doc_default=f"{DEFAULT_WSGI_MAX_QUEUE} (WSGI mounts)",
    )
    body_buffer_bytes: int = setting(
        WSGI_BODY_BUFFER_BYTES,
        checks.int_at_least(0),
        "WSGI only: a request body up to this size is read before the app takes a thread; "
        "a larger one streams into the thread (0: every body streams)",
    )
    lifespan: str = setting(
        "auto", checks.choice(LIFESPAN_MODES), "auto, on (startup must succeed) or off"
    )
    max_body_bytes: int = setting(
        MAX_BODY_BYTES, checks.int_at_least(0), "largest request body; beyond it: 413 (0: no body)"
    )
    fallback: str = setting(
        "",
        checks.mount_name,
        "the mount named here answers instead when this app's status is in fallback_on",
    )
    fallback_on: tuple[int, ...] = setting(
        (404, 405), checks.status_list, "statuses that send the request to the fallback"
    )
    fallback_body_bytes: int = setting(
        FALLBACK_BODY_BYTES,
        checks.int_at_least(0),
        "request body kept for the fallback; a larger one keeps the first answer",
    )
    canary: str = setting(
        "", checks.mount_name, "the mount named here serves canary_percent of the requests"
    )
    canary_percent: float = setting(
        0.0, checks.percent, "share of requests for the canary, 0-100 (steps of 0.01)"
    )
    canary_sticky: str = setting(
        "none",
        checks.sticky_key,
        'what keeps a user on one side: "cookie:NAME", "header:NAME", "client" (address) '
        'or "none" (each request drawn anew)',
    )
    canary_header: str = setting(
        "",
        checks.field_name_or_empty,
        'request header that forces a side: "canary"/"1"/"true" or "primary"/"0"/"false"',
    )
    shadow: str = setting(
        "",
        checks.mount_name,
        "the mount named here gets a copy of shadow_percent of the requests, after this "
        "app has answered; the two answers are compared, the copy's is never sent",
    )
    shadow_percent: float = setting(
        100.0, checks.percent, "share of the requests copied to the shadow, 0-100"
    )
    shadow_methods: tuple[str, ...] = setting(
        SHADOW_METHODS,
        checks.method_list,
        "request methods copied to the shadow (upper-cased); a copy runs the request twice",
    )
    shadow_ignore_json_keys: tuple[str, ...] = setting(
        (),
        checks.string_list,
        "object keys, at any depth, left out of the comparison when both bodies are JSON",
    )
    shadow_log: str = setting(
        "",
        checks.path_or_empty,
        "file the mismatches are appended to, one JSON line each (relative to this file); "
        '"": the error log, at warning level',
        path=True,
    )
    shadow_max_in_flight: int = setting(
        SHADOW_MAX_IN_FLIGHT,
        checks.int_at_least(1),
        "copies this mount runs at once, per worker; past it, a copy is dropped and counted",
    )
    shadow_drop_headers: tuple[str, ...] = setting(
        SHADOW_DROP_HEADERS,
        checks.field_name_list,
        "request header fields a copy goes without (the user's credentials, by default); "
        "[]: the copy carries every field",
    )
    shadow_share: float = setting(
        100.0,
        checks.percent,
        "share of the requests that may be copied, 0-100, picked by a stable hash of "
        "method, path and query: the same requests in every worker and run "
        "(shadow_percent then draws among them)",
    )
    shadow_denoise: bool = setting(
        False,
        checks.boolean,
        "send a share of the copied GET/HEAD/OPTIONS requests to this mount's app a second "
        "time; JSON paths and header fields that differ between its two answers are noise, "
        "left out of the comparison for that route (headers are compared only with this on)",
    )
    shadow_denoise_percent: float = setting(
        10.0, checks.percent, "share of the copied safe requests sent twice, 0-100"
    )
    shadow_ignore_headers: tuple[str, ...] = setting(
        (),
        checks.field_name_list,
        "response header fields left out of the comparison (with shadow_denoise on)",
    )

    @property
    def label(self) -> str:
        """The name users know the mount by, in logs, metrics and errors: its prefix, or
        its name when it has none (a mount reachable only through another's link)."""
        return label_of(self.prefix, self.name)


def label_of(prefix: str, name: str) -> str:
    """The mount label of a mount with this prefix and name (MountConfig.label); the
    router's Mount, which tests also build without a MountConfig, reads it from here."""
    return prefix or name


def _reachable(mount: MountConfig, given: Set[str]) -> Conflict | None:
    """A mount without a prefix is reachable by name only."""
    if mount.label:  # a prefix, or else a name
        return None
    reason = "required key is missing (a mount without one needs a name, and serves "
    return Conflict("prefix", reason + "only as another mount's fallback, canary or shadow)")


def _link_options_need_their_link(mount: MountConfig, given: Set[str]) -> Conflict | None:
    """fallback_on and the canary_* and shadow_* keys are mistakes without the key they
    qualify."""
    for link, options in LINK_OPTIONS.items():
        for key in options:
            if key in given and not getattr(mount, link):
                return Conflict(key, f'applies only with {link} = "NAME"')
    return None


def _app_or_static(mount: MountConfig, given: Set[str]) -> Conflict | None:
    """Exactly one of app and static: a mount runs code or serves files."""
    if mount.static and mount.app:
        return Conflict("static", "set app or static, not both")
    if not mount.static and not mount.app:
        return Conflict("app", "required key is missing (or set static to serve files)")
    return None


def _no_app_keys_on_static(mount: MountConfig, given: Set[str]) -> Conflict | None:
    """A static mount runs no app: the keys that configure one are mistakes there."""
    for key in APP_ONLY_KEYS:
        if mount.static and key in given:
            return Conflict(key, "does not apply to a static mount, which runs no app")
    return None


def _wsgi_only_keys(mount: MountConfig, given: Set[str]) -> Conflict | None:
    """A declared ASGI app has no pool and reads its own body."""
    for key in WSGI_ONLY_KEYS:
        if mount.interface == Interface.ASGI and key in given:
            return Conflict(key, 'applies to WSGI mounts only; this one is interface = "asgi"')
    return None


def _no_wsgi_lifespan(mount: MountConfig, given: Set[str]) -> Conflict | None:
    """The server completes lifespan for a WSGI app, which has none to require."""
    if mount.interface == Interface.WSGI and mount.lifespan == "on":
        return Conflict("lifespan", 'a WSGI app has no lifespan; use "auto" or "off"')
    return None


MOUNT_RULES: tuple[Rule[MountConfig], ...] = (
    _reachable,
    _link_options_need_their_link,
    _app_or_static,
    _no_app_keys_on_static,
    _wsgi_only_keys,
    _no_wsgi_lifespan,
)


def with_pool_defaults(mount: MountConfig) -> MountConfig:
    """`mount` with its WSGI pool's size and queue where the table left them out (rule
    "a WSGI pool's size"): a WSGI or undetected ("auto") app may get a pool; ASGI and
    static mounts keep None."""
    if mount.static or mount.interface == Interface.ASGI:
        return mount
    threads = DEFAULT_WSGI_THREADS if mount.threads is None else mount.threads
    max_queue = DEFAULT_WSGI_MAX_QUEUE if mount.max_queue is None else mount.max_queue
    return replace(mount, threads=threads, max_queue=max_queue)


def links_of(mount: MountConfig) -> tuple[tuple[str, str], ...]:
    """The mount's links, (key, the name it gives), for gateway/config/links.py."""
    return tuple((key, getattr(mount, key)) for key in LINK_KEYS if getattr(mount, key))
