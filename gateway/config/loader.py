"""The mount file: TOML in, frozen dataclasses out, every value validated (DESIGN §1).

Rules:
1. Config is inert data. Loading it imports no app and binds nothing; an app reference is
   checked for its shape only ("module:attribute"), never resolved.
2. Each setting is declared once: the dataclass field carries its default, its help text,
   its validator and (for those the command line may override) its flag, with
   uvicorn's and gunicorn's names as aliases. The CLI (`cli_options`), each flag's
   environment variable (`CliOption.env`) and the reference docs (`describe_settings`)
   are derived from it.
3. Nothing is swallowed. An unknown key, a wrong type or a bad value raises `ConfigError`
   naming the file, the table ("server", "mount #N" 1-based, or "top level") and the key.
   A TOML bool is never accepted where a number is expected.
4. Command-line overrides pass through the same validators as the file.
5. Layer 1: stdlib and `gateway.errors` only; no asyncio, socket, threading or signal.
6. One app without a mount file (`gateway serve main:app`, `app_config`) and mounts
   given as mappings (`gateway.run(mounts=...)`, `mapping_config`) become the mapping a
   mount file would hold and pass the same validation: one code path.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, TypeVar

from gateway.asgi import DECLARED_INTERFACES, Interface
from gateway.config import access_format, checks, links

# Bind and parse_bind are part of the config's vocabulary: re-exported explicitly.
from gateway.config.bind import Bind as Bind
from gateway.config.bind import parse_bind as parse_bind
from gateway.errors import ConfigError

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
LIFESPAN_MODES = ("auto", "on", "off")
HTTP_PARSERS = ("auto", "h11", "httptools")
CLIENT_CERT_MODES = ("none", "optional", "required")
TLS_FILES = ("certfile", "keyfile", "ca_certs")  # relative to the mount file, like pythonpath
# Paths of the server process's own files: relative to the mount file when written there,
# to the working directory when typed on the command line (where a shell user looks).
PROCESS_PATHS = ("pid", "chdir")
# Mount keys that configure app code (how to call it, its pool, its lifespan); a static
# mount runs none, so one of them there is a mistake worth naming.
APP_ONLY_KEYS = ("interface", "threads", "max_queue", "body_buffer_bytes", "lifespan")
# Mount keys that configure a WSGI app's pool and input; an ASGI app has neither.
WSGI_ONLY_KEYS = ("threads", "max_queue", "body_buffer_bytes")
# Proxies whose X-Forwarded-*/Forwarded fields count (proxy_headers): this host's own,
# as uvicorn and gunicorn trust by default. Not "unix": who may connect to a unix socket
# is a matter of file permissions, so trusting its peers is left to an explicit choice.
FORWARDED_ALLOW_IPS = ("127.0.0.1", "::1")

# A WSGI mount's pool size when the file does not say. Between Waitress's 4 threads and
# mod_wsgi daemon mode's 15: enough to overlap the database and network waits of a
# typical legacy app, few enough that several WSGI mounts in one worker stay cheap.
# Explicit `threads` per mount is recommended; this is only the safe fallback.
DEFAULT_WSGI_THREADS = 10
# Requests a WSGI mount holds waiting for a free thread; past it, 503. The listen queue
# uWSGI and mod_wsgi's daemon mode put in front of a legacy app's workers (100 each):
# deep enough for a burst (a page's parallel requests, a client's retry), bounded so that
# under overload a request waits at most ~100/threads request durations or fails at once.
DEFAULT_WSGI_MAX_QUEUE = 100
# A WSGI request body up to this size is read on the event loop before the call takes a
# thread, so a client that trickles it holds a connection, not one of the pool's threads;
# a larger body streams into the thread as the app reads. 64 KiB holds nearly every form
# post and JSON call whole: more than nginx's client_body_buffer_size (8-16 KiB) and less
# than waitress's in-memory inbuf_overflow (512 KiB), because both of those then spool
# the whole body to a temporary file, and this bound is all we buffer. It is the
# connection's own read-ahead bound (BODY_HIGH_WATER_BYTES) again, so a thousand stalled
# uploads cost at most ~128 MiB.
WSGI_BODY_BUFFER_BYTES = 64 * 1024

# The whole request head (request line + headers). 16 KiB is h11's own default
# (DEFAULT_MAX_INCOMPLETE_EVENT_SIZE); nginx's default buffers accept 4 x 8 KiB lines and
# gunicorn ~100 fields of 8 KiB, so real browsers with big cookies fit, and a peer cannot
# make us buffer an unbounded head. Below 1 KiB ordinary requests would be refused.
MAX_HEADER_BYTES = 16 * 1024
MIN_HEADER_BYTES = 1024

# The request target (path + query). RFC 9112 §3 asks servers to support request lines
# of at least 8000 octets; nginx's 8 KiB line buffer is the same figure. Beyond it: 414.
MAX_TARGET_BYTES = 8 * 1024
MIN_TARGET_BYTES = 256

# Per-mount request body limit. nginx's 1 MiB default breaks the file uploads that legacy
# apps routinely accept, so we follow the 100 MB figure common at CDNs (Cloudflare's
# default): generous for uploads, yet one request cannot fill memory or disk unnoticed.
# 0 refuses any request body (413).
MAX_BODY_BYTES = 100 * 1024 * 1024

# The request body a fallback mount keeps, so that it can replay the request to its
# target. 1 MiB is nginx's client_max_body_size default: forms and JSON fit with room to
# spare, uploads do not. It is held only until the first app's status is known, which
# is usually at once; a larger body keeps the first answer (README: Migrating).
FALLBACK_BODY_BYTES = 1024 * 1024
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
    ),
}
# Shadow copies a mount runs at once, per worker (shadow_max_in_flight). A shadow that
# answers as fast as the primary holds a slot for about one request's time: ~10 copies
# at 1,000 requests/s per worker and 10 ms each; 16 leaves room for a burst. A slower
# shadow is neither waited for nor queued for: its copies are dropped and counted, so
# its tasks and buffers (a copy holds at most 1 MiB of request body and 1 MiB of each
# answer, gateway/migration/shadow.py) stay bounded whatever the shadow does.
SHADOW_MAX_IN_FLIGHT = 16
# Safe methods (RFC 9110 §9.2.1): a copy runs the request a second time, which only a
# request without side effects can afford by default.
SHADOW_METHODS = ("GET", "HEAD")
# Fields a shadow copy goes without: the user's credentials. The shadow is code under
# trial, often with other logging and other owners; a copy that carries a session
# cookie or a bearer token acts as that user a second time, and may write their secret
# into a log the primary's owners never see. Sites whose shadow needs them opt in with [].
SHADOW_DROP_HEADERS = ("cookie", "authorization")

# uvicorn's default; long enough for a browser's next request, short enough that idle
# connections do not pile up (gunicorn uses 2 s, nginx 75 s behind a proxy).
KEEP_ALIVE_TIMEOUT_S = 5.0
# From the first byte of a request head to its end. A real client sends its head in one
# or two packets: even 16 KiB over a 56 kbit/s link takes under 3 s, and TCP's first
# retransmissions (1 s, 2 s) fit too. nginx (client_header_timeout) and Node.js allow
# 60 s; a Slowloris client holds a connection for the whole bound, so ours is tighter.
HEADER_TIMEOUT_S = 10.0
# The longest pause in a request body while the app waits for it (nginx's
# client_body_timeout has the same meaning, 60 s). A mobile client survives a handover
# or a run of retransmissions (1+2+4+8 s) within it; a stalled upload to a WSGI app holds
# one of its pool's threads meanwhile, hence half of nginx's figure.
BODY_TIMEOUT_S = 30.0
# How long a response may wait on a client that reads nothing (its socket's buffers and
# the transport's write buffer full) before the connection is cut and the app's send (a
# WSGI thread) is freed. nginx's send_timeout has the same meaning, 60 s; like
# body_timeout, ours is half of that because a WSGI response holds one of its pool's
# threads meanwhile, and it matches gunicorn's `timeout` (30 s), after which a sync
# worker stuck on a client is killed. A client that keeps reading, however slowly, is
# not cut: the wait restarts whenever the bytes it has not taken reach a new low.
SEND_TIMEOUT_S = 30.0
# gunicorn's default, and Kubernetes' terminationGracePeriodSeconds: drain fits the pod's.
GRACEFUL_TIMEOUT_S = 30.0

# gunicorn's default: a worker's loop that has not checked in for this long is stuck (an
# app blocking it, say), so it is killed. Long enough for a slow GC pause or a big import.
WORKER_TIMEOUT_S = 30.0

# WebSocket keep-alive: uvicorn's and the websockets library's 20 s for both, so a dead
# peer behind a NAT is noticed within a minute, and an idle proxy (60 s) never times out.
WS_PING_INTERVAL_S = 20.0
WS_PING_TIMEOUT_S = 20.0
# The largest WebSocket message, reassembled: uvicorn's and websockets' 16 MiB default.
# Beyond it the connection closes with 1009 (RFC 6455 §7.4.1): a peer cannot make a
# worker buffer an unbounded message.
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# Pending connections the kernel queues per socket before accept(); gunicorn's default,
# and no more than the usual net.core.somaxconn, which caps it anyway.
LISTEN_BACKLOG = 2048

COMMAND_LINE = " (command line)"
"""Appended to the file name in errors about command-line overrides."""


ENV_PREFIX = "GATEWAY_"
"""Every flag's environment variable is this prefix and the flag in upper snake case."""


class OptionKind(StrEnum):
    """What a command-line flag takes, and so how argparse and the environment read it."""

    LIST = "list"  # repeatable; each use adds one value
    INT = "int"
    FLOAT = "float"
    STR = "str"
    CHOICE = "choice"  # one of the flag's choices
    BOOL_OFF = "bool-off"  # a switch that turns the setting off
    BOOL_ON = "bool-on"  # a switch that turns the setting on
    HOST = "host"  # half of one bind address (BIND_PARTS)
    PORT = "port"  # the other half


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


@dataclass(frozen=True)
class _Flag:
    """The command-line side of a setting; `help` defaults to the setting's own."""

    flag: str
    kind: OptionKind
    help: str = ""
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    split_commas: bool = False


def _setting(
    default: Any, check: checks.Check, help: str, cli: _Flag | None = None, doc_default: str = ""
) -> Any:
    """A dataclass field that carries its whole declaration in `metadata`.

    `doc_default` replaces the rendered default in the reference where the literal one
    would mislead (threads: None stands for a value computed at load time).
    """
    meta = {"help": help, "check": check, "cli": cli, "doc": doc_default}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerConfig:
    """The [server] table: process-wide settings."""

    bind: tuple[Bind, ...] = _setting(
        (Bind("tcp", host="127.0.0.1", port=8000),),
        checks.binds,
        "addresses to listen on: host:port, [ipv6]:port, unix:/path or fd://N",
        _Flag(
            "--bind",
            OptionKind.LIST,
            "address to listen on (repeatable; replaces the file's list)",
            aliases=("-b",),
        ),
    )
    workers: int = _setting(
        1,
        checks.int_at_least(1),
        "worker processes; 1 serves in this process",
        _Flag("--workers", OptionKind.INT, aliases=("-w",)),
    )
    log_level: str = _setting(
        "info",
        checks.choice(LOG_LEVELS),
        "one of " + ", ".join(LOG_LEVELS),
        _Flag("--log-level", OptionKind.CHOICE, "log level", LOG_LEVELS),
    )
    access_log: bool = _setting(
        True,
        checks.boolean,
        "log one line per request",
        _Flag("--no-access-log", OptionKind.BOOL_OFF, "do not log one line per request"),
    )
    log_file: str = _setting(
        "", checks.path_or_empty, 'error log file (SIGUSR1 reopens it); "": stderr'
    )
    access_log_file: str = _setting(
        "", checks.path_or_empty, 'access log file (SIGUSR1 reopens it); "": stdout'
    )
    # "": the gateway's own handlers (the two settings above). A file replaces them, as
    # uvicorn's --log-config does, for sites that already ship one logging setup.
    log_config: str = _setting(
        "",
        checks.path_or_empty,
        "logging.config file (relative to the working directory) that replaces the "
        "gateway's own log setup: dictConfig as .json, or .yaml/.yml (needs PyYAML), "
        'otherwise fileConfig (INI); "": none',
        _Flag("--log-config", OptionKind.STR),
    )
    # "": the line the access log has always had (README: Logging), so that existing
    # parsers and dashboards keep working; gunicorn's atoms are there for those who ask.
    access_log_format: str = _setting(
        "",
        access_format.check,
        "access log line in gunicorn's atoms (%(h)s %(r)s %(s)s %(b)s %(D)s ...) plus "
        '%(mount)s and %(route)s; "": the default line',
        _Flag("--access-log-format", OptionKind.STR),
    )
    # Text by default: what a person reads in a terminal; "json" is for log shippers.
    log_format: str = _setting(
        "text",
        checks.choice(LOG_FORMATS),
        "text, or json: one JSON object per access and error line",
        _Flag("--log-format", OptionKind.CHOICE, choices=LOG_FORMATS),
    )
    # On, as in uvicorn and gunicorn; off hides which server answers (RFC 9110 "Server"
    # warns that the field can help an attacker find known holes).
    server_header: bool = _setting(
        True,
        checks.boolean,
        'send a "server: gateway" field with every response unless the app sent one',
        _Flag("--no-server-header", OptionKind.BOOL_OFF, 'send no "server" field'),
    )
    keep_alive_timeout: float = _setting(
        KEEP_ALIVE_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds an idle keep-alive connection stays open",
        _Flag(
            "--keep-alive-timeout",
            OptionKind.FLOAT,
            aliases=("--timeout-keep-alive", "--keep-alive"),
        ),
    )
    header_timeout: float = _setting(
        HEADER_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds from a request head's first byte to its end; then 408 and close",
    )
    body_timeout: float = _setting(
        BODY_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds the request body may pause while the app waits for it; then 408 and close",
    )
    send_timeout: float = _setting(
        SEND_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds a response may wait for a client that reads nothing; then the connection closes",
    )
    limit_concurrency: int = _setting(
        0,
        checks.int_at_least(0),
        "requests and WebSockets a worker serves at once; past it: 503 at once; 0: no limit",
        _Flag("--limit-concurrency", OptionKind.INT),
    )
    backlog: int = _setting(
        LISTEN_BACKLOG,
        checks.int_at_least(1),
        "connections the kernel queues per socket before accept (capped by somaxconn)",
        _Flag("--backlog", OptionKind.INT),
    )
    graceful_timeout: float = _setting(
        GRACEFUL_TIMEOUT_S,
        checks.seconds(positive=False),
        "seconds requests get to finish on shutdown",
        _Flag("--graceful-timeout", OptionKind.FLOAT, aliases=("--timeout-graceful-shutdown",)),
    )
    max_header_bytes: int = _setting(
        MAX_HEADER_BYTES,
        checks.int_at_least(MIN_HEADER_BYTES),
        "largest request head; beyond it: 431",
    )
    max_target_bytes: int = _setting(
        MAX_TARGET_BYTES,
        checks.int_at_least(MIN_TARGET_BYTES),
        "longest request target; beyond it: 414",
    )
    pythonpath: tuple[str, ...] = _setting(
        (".",),
        checks.string_list,
        "directories put first on sys.path, relative to this file",
        _Flag(
            "--pythonpath",
            OptionKind.LIST,
            "directory put first on sys.path (repeatable, or a,b; relative to the current "
            "directory; replaces the file's list)",
            aliases=("--app-dir",),
            split_commas=True,
        ),
    )
    http: str = _setting(
        "auto",
        checks.choice(HTTP_PARSERS),
        "HTTP/1.1 parser: httptools (C, fast), h11 (pure Python); auto picks httptools",
        _Flag("--http", OptionKind.CHOICE, choices=HTTP_PARSERS),
    )
    ws_ping_interval: float = _setting(
        WS_PING_INTERVAL_S,
        checks.seconds(positive=False),
        "seconds between the server's WebSocket pings; 0: no pings",
    )
    ws_ping_timeout: float = _setting(
        WS_PING_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds a WebSocket peer has to answer a ping before the connection closes",
    )
    ws_max_message_bytes: int = _setting(
        WS_MAX_MESSAGE_BYTES,
        checks.int_at_least(1),
        "largest WebSocket message; beyond it the connection closes with 1009",
    )
    ws_per_message_deflate: bool = _setting(
        True, checks.boolean, "negotiate permessage-deflate when a WebSocket client offers it"
    )
    preload: bool = _setting(
        False,
        checks.boolean,
        "import the apps once, before the workers start, to share their memory "
        "(a code change then needs a restart, not a HUP)",
    )
    # Off by default: a server without hooks imports nothing beyond the apps.
    hooks: str = _setting(
        "",
        checks.module_or_empty,
        "module whose functions on_starting, when_ready, post_fork, worker_exit and "
        'on_reload are called at those moments (README: Server hooks), e.g. "mysite.hooks"',
        _Flag("--hooks", OptionKind.STR),
    )
    # Off by default, as in gunicorn: a pid file is for the init scripts that ask for one.
    pid: str = _setting(
        "",
        checks.path_or_empty,
        "write the server's pid to this file once it has bound, remove it at a clean exit "
        '(relative to this file; on the command line, to the working directory); "": none',
        _Flag("--pid", OptionKind.STR),
    )
    # "": stay where started, as every server does unless told otherwise.
    chdir: str = _setting(
        "",
        checks.path_or_empty,
        "change to this directory after reading the mount file, before the hooks and apps "
        'load (relative to this file; on the command line, to the working directory); "": stay',
        _Flag("--chdir", OptionKind.STR),
    )
    # "": keep the identity the server started with; a root server drops it only when told.
    user: str = _setting(
        "",
        checks.account_or_empty,
        "after binding, before any app loads, run as this user (name or uid; needs root); "
        '"": stay who started it',
        _Flag("--user", OptionKind.STR),
    )
    group: str = _setting(
        "",
        checks.account_or_empty,
        'with or without user, run as this group (name or gid; needs root); "": the '
        "user's primary group",
        _Flag("--group", OptionKind.STR),
    )
    worker_timeout: float = _setting(
        WORKER_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds a worker's event loop may go without checking in; then it is replaced",
        _Flag("--worker-timeout", OptionKind.FLOAT, aliases=("--timeout", "-t")),
    )
    max_requests: int = _setting(
        0,
        checks.int_at_least(0),
        "requests a worker serves before it is replaced gracefully; 0: never",
        _Flag("--max-requests", OptionKind.INT, aliases=("--limit-max-requests",)),
    )
    max_requests_jitter: int = _setting(
        0,
        checks.int_at_least(0),
        "up to this many more requests, at random per worker, so workers recycle apart",
        _Flag("--max-requests-jitter", OptionKind.INT),
    )
    unix_socket_mode: int | None = _setting(
        None,
        checks.file_mode,
        "permissions of unix: sockets, in octal (0o660); by default the umask decides",
        doc_default="umask",
    )
    health_path: str = _setting(
        "",
        checks.health_path,
        'answer GET PATH/live and PATH/ready before routing, e.g. "/_gateway"; "": off',
    )
    metrics_path: str = _setting(
        "",
        checks.metrics_path,
        "answer GET PATH with per-mount Prometheus metrics, summed over workers, before "
        'routing, e.g. "/_gateway/metrics" (needs the `metrics` extra); "": off',
    )
    shutdown_delay: float = _setting(
        0.0,
        checks.seconds(positive=False),
        "seconds after SIGTERM that readiness answers 503 while requests are still served",
    )
    proxy_headers: bool = _setting(
        False,
        checks.boolean,
        "take client address, scheme and host from X-Forwarded-* or Forwarded fields "
        "sent by a peer in forwarded_allow_ips",
        _Flag("--proxy-headers", OptionKind.BOOL_ON),
    )
    forwarded_allow_ips: tuple[str, ...] = _setting(
        FORWARDED_ALLOW_IPS,
        checks.trust_list,
        'proxies trusted with proxy_headers: IP addresses, networks (CIDR), "*" (any), '
        '"unix" (unix-socket peers)',
        _Flag(
            "--forwarded-allow-ips",
            OptionKind.LIST,
            "proxy trusted with --proxy-headers (repeatable, or a,b; replaces the file's list)",
            split_commas=True,
        ),
    )
    # uvicorn's --root-path: a proxy that strips a prefix ("/app") forwards the client's
    # /app/x as /x. The scope's root_path starts with it and path gets it back (the ASGI
    # spec keeps root_path inside path), so the apps build their URLs with the prefix;
    # the router matches mounts below it. "": no such proxy.
    root_path: str = _setting(
        "",
        checks.root_path,
        'prefix a proxy strips before forwarding, e.g. "/app"; the apps see it as root_path '
        '(SCRIPT_NAME) and build their URLs with it; "": none',
        _Flag("--root-path", OptionKind.STR),
    )
    # Off: nginx, and most proxies, pass a client's own X-Forwarded-Host through
    # unchanged, so trusting it lets any client choose the Host an app builds absolute
    # URLs from (password-reset links). uvicorn, gunicorn and Werkzeug's ProxyFix leave
    # it unread by default too; turn it on only behind a proxy that sets or strips it.
    forwarded_host: bool = _setting(
        False,
        checks.boolean,
        "with proxy_headers, also take the Host field from X-Forwarded-Host or Forwarded's "
        "host= (only behind a proxy that overwrites or removes them)",
    )
    certfile: str = _setting(
        "",
        checks.path_or_empty,
        'serve TLS with this PEM certificate (chain), relative to this file; "": plain HTTP',
        _Flag(
            "--ssl-certfile",
            OptionKind.STR,
            "serve TLS with this PEM certificate (chain), relative to the current directory",
            aliases=("--certfile",),
        ),
    )
    keyfile: str = _setting(
        "",
        checks.path_or_empty,
        'PEM private key of certfile; "": the key is in certfile',
        _Flag(
            "--ssl-keyfile",
            OptionKind.STR,
            "PEM private key of --ssl-certfile, relative to the current directory",
            aliases=("--keyfile",),
        ),
    )
    keyfile_password: str = _setting("", checks.path_or_empty, "password of an encrypted keyfile")
    ca_certs: str = _setting(
        "", checks.path_or_empty, "PEM file of the CAs that sign client certificates (client_cert)"
    )
    client_cert: str = _setting(
        "none",
        checks.choice(CLIENT_CERT_MODES),
        "TLS client certificates (mTLS): none, optional (verified if sent) or required",
    )
    reload: bool = _setting(
        False,
        checks.boolean,
        "development: restart when an app's source or the mount file changes (watchfiles)",
        _Flag("--reload", OptionKind.BOOL_ON),
    )


@dataclass(frozen=True)
class MountConfig:
    """One [[mount]] table: an app served under a path prefix."""

    # "" on a mount that is only another mount's target; it must have a name then.
    prefix: str = _setting(
        "",
        checks.prefix,
        'path prefix on segment boundaries: "/api" serves /api/x, never /apix; without '
        "one, the mount serves only as another mount's fallback, canary or shadow",
        doc_default="required, unless named",
    )
    name: str = _setting(
        "",
        checks.mount_name,
        "names the mount, for other mounts' fallback, canary and shadow keys",
    )
    # "" on static mounts: exactly one of app and static (_load_mount).
    app: str = _setting(
        "",
        checks.app_reference,
        '"module:attribute", or "module:factory()" to call a factory',
        doc_default="required, unless static",
    )
    static: str = _setting(
        "",
        checks.directory,
        "serve the files under this directory (relative to this file) instead of an app",
    )
    # (_setting returns a dataclasses.field, which ruff cannot see through an enum type)
    interface: Interface = _setting(  # noqa: RUF009
        Interface.AUTO,
        checks.member(DECLARED_INTERFACES),
        "asgi, wsgi or auto (detect; explicit is recommended)",
    )
    # None after loading only on interface = "asgi" mounts, which have no pool.
    threads: int | None = _setting(
        None,
        checks.int_at_least(1),
        "WSGI only: this mount's thread pool size",
        doc_default=f"{DEFAULT_WSGI_THREADS} (WSGI mounts)",
    )
    # None after loading only on interface = "asgi" mounts, as for threads.
    max_queue: int | None = _setting(
        None,
        checks.int_at_least(0),
        "WSGI only: requests that may wait for a free thread; past it: 503 with Retry-After",
        doc_default=f"{DEFAULT_WSGI_MAX_QUEUE} (WSGI mounts)",
    )
    body_buffer_bytes: int = _setting(
        WSGI_BODY_BUFFER_BYTES,
        checks.int_at_least(0),
        "WSGI only: a request body up to this size is read before the app takes a thread; "
        "a larger one streams into the thread (0: every body streams)",
    )
    lifespan: str = _setting(
        "auto", checks.choice(LIFESPAN_MODES), "auto, on (startup must succeed) or off"
    )
    max_body_bytes: int = _setting(
        MAX_BODY_BYTES, checks.int_at_least(0), "largest request body; beyond it: 413 (0: no body)"
    )
    fallback: str = _setting(
        "",
        checks.mount_name,
        "the mount named here answers instead when this app's status is in fallback_on",
    )
    fallback_on: tuple[int, ...] = _setting(
        (404, 405), checks.status_list, "statuses that send the request to the fallback"
    )
    fallback_body_bytes: int = _setting(
        FALLBACK_BODY_BYTES,
        checks.int_at_least(0),
        "request body kept for the fallback; a larger one keeps the first answer",
    )
    canary: str = _setting(
        "", checks.mount_name, "the mount named here serves canary_percent of the requests"
    )
    canary_percent: float = _setting(
        0.0, checks.percent, "share of requests for the canary, 0-100 (steps of 0.01)"
    )
    canary_sticky: str = _setting(
        "none",
        checks.sticky_key,
        'what keeps a user on one side: "cookie:NAME", "header:NAME", "client" (address) '
        'or "none" (each request drawn anew)',
    )
    canary_header: str = _setting(
        "",
        checks.field_name_or_empty,
        'request header that forces a side: "canary"/"1"/"true" or "primary"/"0"/"false"',
    )
    shadow: str = _setting(
        "",
        checks.mount_name,
        "the mount named here gets a copy of shadow_percent of the requests, after this "
        "app has answered; the two answers are compared, the copy's is never sent",
    )
    shadow_percent: float = _setting(
        100.0, checks.percent, "share of the requests copied to the shadow, 0-100"
    )
    shadow_methods: tuple[str, ...] = _setting(
        SHADOW_METHODS,
        checks.method_list,
        "request methods copied to the shadow (upper-cased); a copy runs the request twice",
    )
    shadow_ignore_json_keys: tuple[str, ...] = _setting(
        (),
        checks.string_list,
        "object keys, at any depth, left out of the comparison when both bodies are JSON",
    )
    shadow_log: str = _setting(
        "",
        checks.path_or_empty,
        "file the mismatches are appended to, one JSON line each (relative to this file); "
        '"": the error log, at warning level',
    )
    shadow_max_in_flight: int = _setting(
        SHADOW_MAX_IN_FLIGHT,
        checks.int_at_least(1),
        "copies this mount runs at once, per worker; past it, a copy is dropped and counted",
    )
    shadow_drop_headers: tuple[str, ...] = _setting(
        SHADOW_DROP_HEADERS,
        checks.field_name_list,
        "request header fields a copy goes without (the user's credentials, by default); "
        "[]: the copy carries every field",
    )

    @property
    def label(self) -> str:
        """The name users know the mount by, in logs, metrics and errors: its prefix, or
        its name when it has none (a mount reachable only through another's link)."""
        return self.prefix or self.name


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
    base = os.path.dirname(os.path.abspath(path))
    server = _anchor(_build(ServerConfig, table, where), base)
    server = _apply_overrides(server, overrides, _Where(path + COMMAND_LINE, "server"))
    server = _anchor(server, os.getcwd())  # a path typed on the command line: the shell's
    _check_tls(server, where)
    resolved = tuple(os.path.normpath(os.path.join(base, p)) for p in server.pythonpath)
    files = {key: getattr(server, key) for key in TLS_FILES if getattr(server, key)}
    files = {key: os.path.normpath(os.path.join(base, name)) for key, name in files.items()}
    return replace(server, pythonpath=resolved, **files)


def _anchor(server: ServerConfig, base: str) -> ServerConfig:
    """PROCESS_PATHS made absolute against `base`: so they mean the same after `chdir`,
    and an absolute one (the file's, already anchored) is left as it is."""
    paths = {key: getattr(server, key) for key in PROCESS_PATHS if getattr(server, key)}
    anchored: dict[str, Any] = {
        key: os.path.normpath(os.path.join(base, value)) for key, value in paths.items()
    }
    return replace(server, **anchored)


def _check_tls(server: ServerConfig, where: _Where) -> None:
    """TLS settings that make sense only together. The files are read when a worker
    starts (gateway/server/tls.py), not here (rule 1)."""
    if not server.certfile:
        for key in ("keyfile", "keyfile_password", "ca_certs"):
            if getattr(server, key):
                raise where.fail(key, "needs certfile: without it the server speaks plain HTTP")
    if server.client_cert != "none" and not server.ca_certs:
        reason = "needs ca_certs, the CAs that sign the client certificates"
        raise where.fail("client_cert", reason if server.certfile else "needs certfile")
    if server.ca_certs and server.client_cert == "none":
        reason = 'verifies client certificates only: set client_cert = "optional" or "required"'
        raise where.fail("ca_certs", reason)


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
    # A path typed on the command line is relative to the shell's directory, not the file's.
    for key in ("pythonpath", *TLS_FILES):
        if key in checked and isinstance(checked[key], tuple):
            checked[key] = tuple(os.path.abspath(entry) for entry in checked[key])
        elif checked.get(key):
            checked[key] = os.path.abspath(checked[key])
    return replace(server, **checked)


def _load_mounts(data: dict[str, Any], top: _Where) -> tuple[MountConfig, ...]:
    tables = data.get("mount", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise top.fail("mount", "must be an array of tables: write [[mount]] for each mount")
    if not tables:
        raise top.fail("mount", "at least one [[mount]] table is required")
    mounts = tuple(_load_mount(t, _Where(top.file, f"mount #{n}")) for n, t in enumerate(tables, 1))
    _reject_duplicate_prefixes(mounts, top.file)
    nodes = [links.Node(f"mount #{n}", m.name, _links(m)) for n, m in enumerate(mounts, 1)]
    links.check_links(top.file, nodes)
    return mounts


def _links(mount: MountConfig) -> tuple[tuple[str, str], ...]:
    return tuple((key, getattr(mount, key)) for key in LINK_KEYS if getattr(mount, key))


def _check_target_keys(mount: MountConfig, table: dict[str, Any], where: _Where) -> None:
    """A mount without a prefix is reachable by name only; fallback_on and the canary_*
    and shadow_* keys are mistakes without the key they qualify."""
    if not mount.prefix and not mount.name:
        reason = "required key is missing (a mount without one needs a name, and serves "
        raise where.fail("prefix", reason + "only as another mount's fallback, canary or shadow)")
    for link, options in LINK_OPTIONS.items():
        for key in options:
            if key in table and not getattr(mount, link):
                raise where.fail(key, f'applies only with {link} = "NAME"')


def _load_mount(table: dict[str, Any], where: _Where) -> MountConfig:
    mount = _build(MountConfig, table, where)
    _check_target_keys(mount, table, where)
    if mount.shadow_log:  # anchored at the mount file, like static and pythonpath
        base = os.path.dirname(os.path.abspath(where.file))
        mount = replace(mount, shadow_log=os.path.normpath(os.path.join(base, mount.shadow_log)))
    if mount.static:
        return _static_mount(mount, table, where)
    if not mount.app:
        raise where.fail("app", "required key is missing (or set static to serve files)")
    for key in WSGI_ONLY_KEYS:
        if mount.interface == Interface.ASGI and key in table:
            raise where.fail(key, 'applies to WSGI mounts only; this one is interface = "asgi"')
    if mount.interface == Interface.WSGI and mount.lifespan == "on":
        raise where.fail("lifespan", 'a WSGI app has no lifespan; use "auto" or "off"')
    if mount.interface != Interface.ASGI and mount.threads is None:
        mount = replace(mount, threads=DEFAULT_WSGI_THREADS)
    if mount.interface != Interface.ASGI and mount.max_queue is None:
        mount = replace(mount, max_queue=DEFAULT_WSGI_MAX_QUEUE)
    return mount


def _static_mount(mount: MountConfig, table: dict[str, Any], where: _Where) -> MountConfig:
    """A mount of files: no app and none of the keys that configure one. Its directory is
    anchored at the mount file, like pythonpath; whether it exists is checked when a
    worker loads the mount (adapters.load_static), not here (rule 1)."""
    if mount.app:
        raise where.fail("static", "set app or static, not both")
    for key in APP_ONLY_KEYS:
        if key in table:
            raise where.fail(key, "does not apply to a static mount, which runs no app")
    base = os.path.dirname(os.path.abspath(where.file))
    return replace(mount, static=os.path.normpath(os.path.join(base, mount.static)))


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
        flag: _Flag | None = f.metadata["cli"]
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
