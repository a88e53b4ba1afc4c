"""The [server] table: process-wide settings, each declared once
(gateway/config/settings.py, rule "each setting is declared once"), and the rules that
span several of its keys.

Rules:
1. A setting's declaration is its field here: default, validator, help, path or not,
   and the command-line flag (with uvicorn's and gunicorn's names as aliases) where the
   command line may override it.
2. SERVER_RULES are checked on the settings as loaded, the command line's included: TLS
   settings that make sense only together. The files are read when a worker starts
   (gateway/server/tls.py), not here (gateway/config/loader.py, rule "config is inert
   data").
3. Layer 1: stdlib, gateway.config and (through checks) gateway.http.forwarded only.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from gateway.config import access_format, checks
from gateway.config.bind import Bind
from gateway.config.limits import (
    BODY_TIMEOUT_S,
    FORWARDED_ALLOW_IPS,
    GRACEFUL_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    KEEP_ALIVE_TIMEOUT_S,
    LISTEN_BACKLOG,
    MAX_HEADER_BYTES,
    MAX_TARGET_BYTES,
    MIN_HEADER_BYTES,
    MIN_TARGET_BYTES,
    SEND_TIMEOUT_S,
    WORKER_TIMEOUT_S,
    WS_MAX_MESSAGE_BYTES,
    WS_PING_INTERVAL_S,
    WS_PING_TIMEOUT_S,
)
from gateway.config.settings import Conflict, Flag, OptionKind, Rule, setting

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
HTTP_PARSERS = ("auto", "h11", "httptools")
CLIENT_CERT_MODES = ("none", "optional", "required")
# Paths of the server process's own files, which a `chdir` would move away from: the
# supervisor makes the command line's absolute before it changes directory.
PROCESS_PATHS = ("pid", "chdir")


@dataclass(frozen=True)
class ServerConfig:
    """The [server] table: process-wide settings."""

    bind: tuple[Bind, ...] = setting(
        (Bind("tcp", host="127.0.0.1", port=8000),),
        checks.binds,
        "addresses to listen on: host:port, [ipv6]:port, unix:/path or fd://N",
        Flag(
            "--bind",
            OptionKind.LIST,
            "address to listen on (repeatable; replaces the file's list)",
            aliases=("-b",),
        ),
    )
    workers: int = setting(
        1,
        checks.int_at_least(1),
        "worker processes; 1 serves in this process",
        Flag("--workers", OptionKind.INT, aliases=("-w",)),
    )
    log_level: str = setting(
        "info",
        checks.choice(LOG_LEVELS),
        "one of " + ", ".join(LOG_LEVELS),
        Flag("--log-level", OptionKind.CHOICE, "log level", LOG_LEVELS),
    )
    access_log: bool = setting(
        True,
        checks.boolean,
        "log one line per request",
        Flag("--no-access-log", OptionKind.BOOL_OFF, "do not log one line per request"),
    )
    log_file: str = setting(
        "", checks.path_or_empty, 'error log file (SIGUSR1 reopens it); "": stderr'
    )
    access_log_file: str = setting(
        "", checks.path_or_empty, 'access log file (SIGUSR1 reopens it); "": stdout'
    )
    # "": the gateway's own handlers (the two settings above). A file replaces them, as
    # uvicorn's --log-config does, for sites that already ship one logging setup.
    log_config: str = setting(
        "",
        checks.path_or_empty,
        "logging.config file (relative to the working directory) that replaces the "
        "gateway's own log setup: dictConfig as .json, or .yaml/.yml (needs PyYAML), "
        'otherwise fileConfig (INI); "": none',
        Flag("--log-config", OptionKind.STR),
    )
    # "": the line the access log has always had (README: Logging), so that existing
    # parsers and dashboards keep working; gunicorn's atoms are there for those who ask.
    access_log_format: str = setting(
        "",
        access_format.check,
        "access log line in gunicorn's atoms (%(h)s %(r)s %(s)s %(b)s %(D)s ...) plus "
        '%(mount)s and %(route)s; "": the default line',
        Flag("--access-log-format", OptionKind.STR),
    )
    # Text by default: what a person reads in a terminal; "json" is for log shippers.
    log_format: str = setting(
        "text",
        checks.choice(LOG_FORMATS),
        "text, or json: one JSON object per access and error line",
        Flag("--log-format", OptionKind.CHOICE, choices=LOG_FORMATS),
    )
    # On, as in uvicorn and gunicorn; off hides which server answers (RFC 9110 "Server"
    # warns that the field can help an attacker find known holes).
    server_header: bool = setting(
        True,
        checks.boolean,
        'send a "server: gateway" field with every response unless the app sent one',
        Flag("--no-server-header", OptionKind.BOOL_OFF, 'send no "server" field'),
    )
    # On: a client that does not speak HTTP/2 never notices (TLS offers it by ALPN, and
    # cleartext takes it only from a client that opens with its preface, RFC 9113 §3.3,
    # §3.4); off answers such a preface as HTTP/1.1 does any other bad request line.
    http2: bool = setting(
        True,
        checks.boolean,
        "serve HTTP/2: by ALPN over TLS, with prior knowledge (h2c) in cleartext",
        Flag("--no-http2", OptionKind.BOOL_OFF, "serve HTTP/1.1 only"),
    )
    keep_alive_timeout: float = setting(
        KEEP_ALIVE_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds an idle keep-alive connection stays open",
        Flag(
            "--keep-alive-timeout",
            OptionKind.FLOAT,
            aliases=("--timeout-keep-alive", "--keep-alive"),
        ),
    )
    header_timeout: float = setting(
        HEADER_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds from a request head's first byte to its end; then 408 and close",
    )
    body_timeout: float = setting(
        BODY_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds the request body may pause while the app waits for it; then 408 and close",
    )
    send_timeout: float = setting(
        SEND_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds a response may wait for a client that reads nothing; then the connection closes",
    )
    limit_concurrency: int = setting(
        0,
        checks.int_at_least(0),
        "requests and WebSockets a worker serves at once; past it: 503 at once; 0: no limit",
        Flag("--limit-concurrency", OptionKind.INT),
    )
    backlog: int = setting(
        LISTEN_BACKLOG,
        checks.int_at_least(1),
        "connections the kernel queues per socket before accept (capped by somaxconn)",
        Flag("--backlog", OptionKind.INT),
    )
    graceful_timeout: float = setting(
        GRACEFUL_TIMEOUT_S,
        checks.seconds(positive=False),
        "seconds requests get to finish on shutdown",
        Flag("--graceful-timeout", OptionKind.FLOAT, aliases=("--timeout-graceful-shutdown",)),
    )
    max_header_bytes: int = setting(
        MAX_HEADER_BYTES,
        checks.int_at_least(MIN_HEADER_BYTES),
        "largest request head; beyond it: 431",
    )
    max_target_bytes: int = setting(
        MAX_TARGET_BYTES,
        checks.int_at_least(MIN_TARGET_BYTES),
        "longest request target; beyond it: 414",
    )
    pythonpath: tuple[str, ...] = setting(
        (".",),
        checks.string_list,
        "directories put first on sys.path, relative to this file",
        Flag(
            "--pythonpath",
            OptionKind.LIST,
            "directory put first on sys.path (repeatable, or a,b; relative to the current "
            "directory; replaces the file's list)",
            aliases=("--app-dir",),
            split_commas=True,
        ),
        path=True,
    )
    http: str = setting(
        "auto",
        checks.choice(HTTP_PARSERS),
        "HTTP/1.1 parser: httptools (C, fast), h11 (pure Python); auto picks httptools",
        Flag("--http", OptionKind.CHOICE, choices=HTTP_PARSERS),
    )
    ws_ping_interval: float = setting(
        WS_PING_INTERVAL_S,
        checks.seconds(positive=False),
        "seconds between the server's WebSocket pings; 0: no pings",
    )
    ws_ping_timeout: float = setting(
        WS_PING_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds a WebSocket peer has to answer a ping before the connection closes",
    )
    ws_max_message_bytes: int = setting(
        WS_MAX_MESSAGE_BYTES,
        checks.int_at_least(1),
        "largest WebSocket message; beyond it the connection closes with 1009",
    )
    ws_per_message_deflate: bool = setting(
        True, checks.boolean, "negotiate permessage-deflate when a WebSocket client offers it"
    )
    preload: bool = setting(
        False,
        checks.boolean,
        "import the apps once, before the workers start, to share their memory "
        "(a code change then needs a restart, not a HUP)",
    )
    # Off by default: a server without hooks imports nothing beyond the apps.
    hooks: str = setting(
        "",
        checks.module_or_empty,
        "module whose functions on_starting, when_ready, post_fork, worker_exit and "
        'on_reload are called at those moments (README: Server hooks), e.g. "mysite.hooks"',
        Flag("--hooks", OptionKind.STR),
    )
    # Off by default, as in gunicorn: a pid file is for the init scripts that ask for one.
    pid: str = setting(
        "",
        checks.path_or_empty,
        "write the server's pid to this file once it has bound, remove it at a clean exit "
        '(relative to this file; on the command line, to the working directory); "": none',
        Flag("--pid", OptionKind.STR),
        path=True,
    )
    # "": stay where started, as every server does unless told otherwise.
    chdir: str = setting(
        "",
        checks.path_or_empty,
        "change to this directory after reading the mount file, before the hooks and apps "
        'load (relative to this file; on the command line, to the working directory); "": stay',
        Flag("--chdir", OptionKind.STR),
        path=True,
    )
    # "": keep the identity the server started with; a root server drops it only when told.
    user: str = setting(
        "",
        checks.account_or_empty,
        "after binding, before any app loads, run as this user (name or uid; needs root); "
        '"": stay who started it',
        Flag("--user", OptionKind.STR),
    )
    group: str = setting(
        "",
        checks.account_or_empty,
        'with or without user, run as this group (name or gid; needs root); "": the '
        "user's primary group",
        Flag("--group", OptionKind.STR),
    )
    worker_timeout: float = setting(
        WORKER_TIMEOUT_S,
        checks.seconds(positive=True),
        "seconds a worker's event loop may go without checking in; then it is replaced",
        Flag("--worker-timeout", OptionKind.FLOAT, aliases=("--timeout", "-t")),
    )
    max_requests: int = setting(
        0,
        checks.int_at_least(0),
        "requests a worker serves before it is replaced gracefully; 0: never",
        Flag("--max-requests", OptionKind.INT, aliases=("--limit-max-requests",)),
    )
    max_requests_jitter: int = setting(
        0,
        checks.int_at_least(0),
        "up to this many more requests, at random per worker, so workers recycle apart",
        Flag("--max-requests-jitter", OptionKind.INT),
    )
    unix_socket_mode: int | None = setting(
        None,
        checks.file_mode,
        "permissions of unix: sockets, in octal (0o660); by default the umask decides",
        doc_default="umask",
    )
    health_path: str = setting(
        "",
        checks.health_path,
        'answer GET PATH/live and PATH/ready before routing, e.g. "/_gateway"; "": off',
    )
    metrics_path: str = setting(
        "",
        checks.metrics_path,
        "answer GET PATH with per-mount Prometheus metrics, summed over workers, before "
        'routing, e.g. "/_gateway/metrics" (needs the `metrics` extra); "": off',
    )
    # Per-route figures (gateway/migration/routes.py, gateway/server/route_metrics.py).
    # 50 routes: a service's route table seldom has more; each route costs a few dozen
    # Prometheus series per worker (status classes, sides, 14 latency buckets).
    routes_per_mount: int = setting(
        50,
        checks.int_at_least(1),
        "route templates counted apart per mount and worker, with metrics on; the rest "
        'counts as "other"',
    )
    ready_agreement_percent: float = setting(
        99.0,
        checks.percent,
        'shadow agreement (percent) a route needs for the verdict "ready to cut over"',
    )
    ready_min_compared: int = setting(
        100,
        checks.int_at_least(1),
        'shadow comparisons a route needs before its verdict is "ready to cut over" or "disagrees"',
    )
    # Off by default: a listener of its own is a port an operator chooses to open
    # (issue 17, point 1). Plain HTTP even when the apps' port has TLS. (`setting` makes
    # a dataclass field, not a default value; ruff cannot tell that Bind is frozen.)
    admin_bind: Bind | None = setting(  # noqa: RUF009
        None,
        checks.admin_bind,
        "address of the admin listener (the migration page, /metrics, /status.json), apart "
        'from the apps\' port and always plain HTTP: host:port, unix:/path or fd://N; "": off',
        Flag("--admin-bind", OptionKind.STR),
        doc_default='""',
    )
    admin_token: str = setting(
        "",
        checks.token,
        'bearer token the admin listener asks for (Authorization: Bearer TOKEN); "": none',
        Flag("--admin-token", OptionKind.STR),
    )
    shutdown_delay: float = setting(
        0.0,
        checks.seconds(positive=False),
        "seconds after SIGTERM that readiness answers 503 while requests are still served",
    )
    proxy_headers: bool = setting(
        False,
        checks.boolean,
        "take client address, scheme and host from X-Forwarded-* or Forwarded fields "
        "sent by a peer in forwarded_allow_ips",
        Flag("--proxy-headers", OptionKind.BOOL_ON),
    )
    forwarded_allow_ips: tuple[str, ...] = setting(
        FORWARDED_ALLOW_IPS,
        checks.trust_list,
        'proxies trusted with proxy_headers: IP addresses, networks (CIDR), "*" (any), '
        '"unix" (unix-socket peers)',
        Flag(
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
    root_path: str = setting(
        "",
        checks.root_path,
        'prefix a proxy strips before forwarding, e.g. "/app"; the apps see it as root_path '
        '(SCRIPT_NAME) and build their URLs with it; "": none',
        Flag("--root-path", OptionKind.STR),
    )
    # Off: nginx, and most proxies, pass a client's own X-Forwarded-Host through
    # unchanged, so trusting it lets any client choose the Host an app builds absolute
    # URLs from (password-reset links). uvicorn, gunicorn and Werkzeug's ProxyFix leave
    # it unread by default too; turn it on only behind a proxy that sets or strips it.
    forwarded_host: bool = setting(
        False,
        checks.boolean,
        "with proxy_headers, also take the Host field from X-Forwarded-Host or Forwarded's "
        "host= (only behind a proxy that overwrites or removes them)",
    )
    certfile: str = setting(
        "",
        checks.path_or_empty,
        'serve TLS with this PEM certificate (chain), relative to this file; "": plain HTTP',
        Flag(
            "--ssl-certfile",
            OptionKind.STR,
            "serve TLS with this PEM certificate (chain), relative to the current directory",
            aliases=("--certfile",),
        ),
        path=True,
    )
    keyfile: str = setting(
        "",
        checks.path_or_empty,
        'PEM private key of certfile; "": the key is in certfile',
        Flag(
            "--ssl-keyfile",
            OptionKind.STR,
            "PEM private key of --ssl-certfile, relative to the current directory",
            aliases=("--keyfile",),
        ),
        path=True,
    )
    keyfile_password: str = setting("", checks.path_or_empty, "password of an encrypted keyfile")
    ca_certs: str = setting(
        "",
        checks.path_or_empty,
        "PEM file of the CAs that sign client certificates (client_cert)",
        path=True,
    )
    client_cert: str = setting(
        "none",
        checks.choice(CLIENT_CERT_MODES),
        "TLS client certificates (mTLS): none, optional (verified if sent) or required",
    )
    reload: bool = setting(
        False,
        checks.boolean,
        "development: restart when an app's source or the mount file changes (watchfiles)",
        Flag("--reload", OptionKind.BOOL_ON),
    )


def _tls_needs_certfile(server: ServerConfig, given: Set[str]) -> Conflict | None:
    """A key, its password and client CAs qualify a certificate: alone, they would be
    silently unused and the server would speak plain HTTP."""
    if server.certfile:
        return None
    for key in ("keyfile", "keyfile_password", "ca_certs"):
        if getattr(server, key):
            return Conflict(key, "needs certfile: without it the server speaks plain HTTP")
    return None


def _client_cert_needs_cas(server: ServerConfig, given: Set[str]) -> Conflict | None:
    """Client certificates are verified against ca_certs, over TLS (certfile)."""
    if server.client_cert == "none" or server.ca_certs:
        return None
    reason = "needs ca_certs, the CAs that sign the client certificates"
    return Conflict("client_cert", reason if server.certfile else "needs certfile")


def _cas_need_client_cert(server: ServerConfig, given: Set[str]) -> Conflict | None:
    """ca_certs verify client certificates only, which client_cert must ask for."""
    if server.ca_certs and server.client_cert == "none":
        reason = 'verifies client certificates only: set client_cert = "optional" or "required"'
        return Conflict("ca_certs", reason)
    return None


def _admin_apart_from_apps(server: ServerConfig, given: Set[str]) -> Conflict | None:
    """The admin listener is never the apps' port (issue 17, point 1)."""
    if server.admin_bind is not None and server.admin_bind in server.bind:
        return Conflict("admin_bind", f"{server.admin_bind} is in bind too: give it its own")
    return None


SERVER_RULES: tuple[Rule[ServerConfig], ...] = (
    _admin_apart_from_apps,
    _tls_needs_certfile,
    _client_cert_needs_cas,
    _cas_need_client_cert,
)
