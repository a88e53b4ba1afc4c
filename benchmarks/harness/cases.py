"""What is measured: the cases (an app and a URL) and the servers that can serve them.

The gateway serves each case from its mount file in benchmarks/configs/; a peer serves the
same app alone ("module:attribute" from benchmarks/apps/), or, in a mixed-site case, the
whole site as a team would without the gateway: one Starlette app mounting the WSGI app
through a2wsgi beside the ASGI app (apps/bench_site.py), under granian or uvicorn. Every
server gets one worker; every WSGI server gets a pool of WSGI_THREADS threads.

Rules:
1. A case over HTTP/2 (`http2`: h2c with prior knowledge, loaded by h2load) pairs only
   with the servers that speak it: the gateway (its default variant; the `[server]
   http` variants differ in their HTTP/1.1 session only), hypercorn, which runs the
   same h2 library as the gateway, and granian (its `--http auto` takes a client's
   HTTP/2 preface). Every other case is HTTP/1.1, loaded by wrk; hypercorn serves
   only the HTTP/2 cases, where it is the peer that tells what the gateway adds to h2.
2. A mixed-site case (`site_target`) pairs only with the gateway and the servers of the
   whole site (`granian-starlette`, `uvicorn-starlette`), and those serve no other case:
   its URL is one side of a two-mount site, which a peer of one app alone does not serve.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
APPS_DIR = BENCH_DIR / "apps"
CONFIGS_DIR = BENCH_DIR / "configs"
HOST = "127.0.0.1"

# The same pool size on every WSGI server: the gateway's default (and a2wsgi's, see
# apps/bench_a2wsgi.py). One core and one GIL run these CPU-bound apps, so a bigger pool
# only adds thread switching.
WSGI_THREADS = 10
POST_BODY = b"x" * 16384  # what post16k.lua sends
JSON_PAYLOAD = {"message": "hello", "items": [1, 2, 3]}


@dataclass(frozen=True)
class Case:
    """One workload: the gateway mount file and URL, and what a peer serves instead."""

    name: str
    interface: str  # "asgi" | "wsgi": which peers can serve it
    about: str
    config: str  # gateway mount file in configs/
    path: str  # URL path at the gateway
    target: str  # "module:attribute" a peer serves (the app alone); "" in a mixed-site case
    expect: Callable[[bytes], bool]  # is this response body the right answer?
    peer_path: str = ""  # URL path at a peer; default: `path`
    a2wsgi_target: str = ""  # the same WSGI app wrapped by a2wsgi (apps/bench_a2wsgi.py)
    post: bool = False  # POST_BODY via post16k.lua
    paced: bool = False  # a fixed offered rate via paced.lua, for latency comparisons
    alone_config: str = ""  # mixed case: the same app served alone by the gateway
    noshadow_config: str = ""  # shadow case: the same app without its shadow
    http2: bool = False  # h2c with prior knowledge, by h2load (rule "a case over HTTP/2")
    # Mixed-site case: the Starlette + a2wsgi app serving the same site as `config`
    # (apps/bench_site.py), for granian-starlette and uvicorn-starlette; `path` picks
    # the side (rule "a mixed-site case").
    site_target: str = ""


def _is_json(body: bytes) -> bool:
    try:
        return bool(json.loads(body) == JSON_PAYLOAD)
    except ValueError:
        return False


def _is_hello(body: bytes) -> bool:
    return body == b"Hello, world!"


def _is_64k(body: bytes) -> bool:
    return len(body) == 65536


def _is_echo(body: bytes) -> bool:
    return body == POST_BODY


CASES = [
    Case("asgi-hello", "asgi", 'plain ASGI app, "Hello, world!"', "asgi-hello.toml", "/",
         "bench_asgi:hello", _is_hello),
    Case("wsgi-hello", "wsgi", 'plain WSGI app, "Hello, world!"', "wsgi-hello.toml", "/",
         "bench_wsgi:hello", _is_hello, a2wsgi_target="bench_a2wsgi:hello"),
    Case("asgi-64k", "asgi", "plain ASGI app, 64 KiB response", "asgi-64k.toml", "/",
         "bench_asgi:big", _is_64k),
    Case("wsgi-64k", "wsgi", "plain WSGI app, 64 KiB response", "wsgi-64k.toml", "/",
         "bench_wsgi:big", _is_64k, a2wsgi_target="bench_a2wsgi:big"),
    Case("asgi-echo", "asgi", "plain ASGI app, 16 KiB POST echoed", "asgi-echo.toml", "/",
         "bench_asgi:echo", _is_echo, post=True),
    Case("wsgi-echo", "wsgi", "plain WSGI app, 16 KiB POST echoed", "wsgi-echo.toml", "/",
         "bench_wsgi:echo", _is_echo, a2wsgi_target="bench_a2wsgi:echo", post=True),
    Case("fastapi-json", "asgi", "FastAPI, small JSON dict", "fastapi-json.toml", "/json",
         "bench_fastapi:app", _is_json),
    Case("flask-json", "wsgi", "Flask, small JSON dict", "flask-json.toml", "/json",
         "bench_flask:app", _is_json, a2wsgi_target="bench_a2wsgi:flask_app"),
    Case("mixed", "asgi",
         "gateway: FastAPI at /api beside Flask at /flask and plain WSGI at /, GET /api/json;"
         " gateway-alone and peers: the FastAPI app alone, GET /json",
         "mixed.toml", "/api/json", "bench_fastapi:app", _is_json,
         peer_path="/json", alone_config="fastapi-json.toml"),
    Case("shadow", "asgi",
         "gateway: FastAPI JSON with every GET copied to a second FastAPI mount (shadow,"
         " 100%); gateway-noshadow: the same app alone; compare their p99",
         "fastapi-shadow.toml", "/json", "bench_fastapi:app", _is_json,
         noshadow_config="fastapi-json.toml", paced=True),
    Case("h2-asgi-hello", "asgi", 'plain ASGI app, "Hello, world!", over HTTP/2 (h2c)',
         "asgi-hello.toml", "/", "bench_asgi:hello", _is_hello, http2=True),
    Case("h2-fastapi-json", "asgi", "FastAPI, small JSON dict, over HTTP/2 (h2c)",
         "fastapi-json.toml", "/json", "bench_fastapi:app", _is_json, http2=True),
    # The mixed site (rule "a mixed-site case"): its WSGI side at /, its ASGI side at /api.
    Case("mixed-wsgi-hello", "wsgi", 'mixed site, WSGI side: plain WSGI "Hello, world!" at /'
         " beside plain ASGI at /api", "mixed-site-hello.toml", "/hello", "", _is_hello,
         site_target="bench_site:hello"),
    Case("mixed-asgi-hello", "asgi", 'mixed site, ASGI side: plain ASGI "Hello, world!" at'
         " /api beside plain WSGI at /", "mixed-site-hello.toml", "/api/hello", "", _is_hello,
         site_target="bench_site:hello"),
    Case("mixed-wsgi-json", "wsgi", "mixed site, WSGI side: Flask JSON at / beside FastAPI"
         " at /api", "mixed-site-json.toml", "/json", "", _is_json,
         site_target="bench_site:json"),
    Case("mixed-asgi-json", "asgi", "mixed site, ASGI side: FastAPI JSON at /api beside Flask"
         " at /", "mixed-site-json.toml", "/api/json", "", _is_json,
         site_target="bench_site:json"),
    Case("mixed-wsgi-64k", "wsgi", "mixed site, WSGI side: plain WSGI 64 KiB at / beside"
         " plain ASGI at /api", "mixed-site-64k.toml", "/big", "", _is_64k,
         site_target="bench_site:big"),
    Case("mixed-asgi-64k", "asgi", "mixed site, ASGI side: plain ASGI 64 KiB at /api beside"
         " plain WSGI at /", "mixed-site-64k.toml", "/api/big", "", _is_64k,
         site_target="bench_site:big"),
]  # fmt: skip


@dataclass(frozen=True)
class Launch:
    """Where a server listens: an inherited listening socket (fd) or a port it binds."""

    port: int
    fd: int | None = None


@dataclass(frozen=True)
class Server:
    """How to start one server for a case, and which URL path to load there."""

    name: str
    role: str  # "gateway": a row whose ratios to the other rows are reported | "peer"
    serves: Callable[[Case], bool]
    argv: Callable[[Case, Launch], list[str]]
    gateway_path: bool = False  # load `case.path` (the mount file's URL), else `peer_path`
    inherits_socket: bool = False  # gets an already-listening socket as --bind fd://N

    def path(self, case: Case) -> str:
        return case.path if self.gateway_path else (case.peer_path or case.path)


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _gateway(config: Path, at: Launch) -> list[str]:
    return _py("gateway", "serve", str(config), "--bind", f"fd://{at.fd}")


def _uvicorn(http: str, target: str, at: Launch) -> list[str]:
    return _py(
        "uvicorn", target, "--http", http, "--loop", "uvloop", "--no-access-log",
        "--log-level", "warning", "--host", HOST, "--port", str(at.port),
    )  # fmt: skip


def _granian(interface: str, target: str, at: Launch) -> list[str]:
    extra = ["--blocking-threads", str(WSGI_THREADS)] if interface == "wsgi" else []
    return _py(
        "granian", "--interface", interface, "--workers", "1", "--loop", "uvloop",
        "--no-access-log", "--log-level", "warning", "--host", HOST, "--port", str(at.port),
        *extra, target,
    )  # fmt: skip


def _hypercorn(target: str, at: Launch) -> list[str]:
    # No access log unless asked for one; h2c with prior knowledge needs no flag.
    return _py(
        "hypercorn", "--worker-class", "uvloop", "--workers", "1", "--log-level", "warning",
        "--bind", f"{HOST}:{at.port}", target,
    )  # fmt: skip


def _gunicorn(worker: list[str], target: str, at: Launch) -> list[str]:
    # No access log unless asked for one (gthread and asgi alike).
    return _py(
        "gunicorn", "--workers", "1", *worker, "--log-level", "warning",
        "--bind", f"{HOST}:{at.port}", target,
    )  # fmt: skip


GTHREAD = ["--worker-class", "gthread", "--threads", str(WSGI_THREADS)]
# gunicorn's own ASGI worker (gunicorn >= 24), on uvloop as the other ASGI servers here.
# Its HTTP parser is gunicorn_h1c where that is installed, else its pure-Python one
# (`--http-parser auto`); run.py records the gunicorn-h1c version it found ("-": none).
GUNICORN_ASGI = ["--worker-class", "asgi", "--asgi-loop", "uvloop"]


def _asgi(case: Case) -> bool:
    """An ASGI case over HTTP/1.1 (rule "a case over HTTP/2") of one app alone (rule "a
    mixed-site case")."""
    return case.interface == "asgi" and not case.http2 and not case.site_target


def _asgi_h2(case: Case) -> bool:
    return case.interface == "asgi" and case.http2


def _asgi_any(case: Case) -> bool:
    return case.interface == "asgi" and not case.site_target


def _wsgi(case: Case) -> bool:
    return case.interface == "wsgi" and not case.http2 and not case.site_target


def _site(case: Case) -> bool:
    """A mixed-site case, either side (rule "a mixed-site case")."""
    return bool(case.site_target)


PEERS = [
    Server("uvicorn-httptools", "peer", _asgi, lambda c, at: _uvicorn("httptools", c.target, at)),
    Server("uvicorn-h11", "peer", _asgi, lambda c, at: _uvicorn("h11", c.target, at)),
    Server("granian-asgi", "peer", _asgi_any, lambda c, at: _granian("asgi", c.target, at)),
    Server("granian-wsgi", "peer", _wsgi, lambda c, at: _granian("wsgi", c.target, at)),
    Server("gunicorn-gthread", "peer", _wsgi, lambda c, at: _gunicorn(GTHREAD, c.target, at)),
    Server("gunicorn-asgi", "peer", _asgi, lambda c, at: _gunicorn(GUNICORN_ASGI, c.target, at)),
    Server("uvicorn-a2wsgi", "peer", _wsgi,
           lambda c, at: _uvicorn("httptools", c.a2wsgi_target, at)),
    Server("hypercorn", "peer", _asgi_h2, lambda c, at: _hypercorn(c.target, at)),
    # The whole mixed site in one ASGI server: Starlette, the WSGI app through a2wsgi.
    Server("granian-starlette", "peer", _site,
           lambda c, at: _granian("asgi", c.site_target, at)),
    Server("uvicorn-starlette", "peer", _site,
           lambda c, at: _uvicorn("httptools", c.site_target, at)),
]  # fmt: skip


class ConfigFiles:
    """The gateway's mount files: configs/*.toml as they are, or a copy that sets `http`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._copies: dict[tuple[str, str], Path] = {}

    def path(self, name: str, http: str | None) -> Path:
        source = CONFIGS_DIR / name
        if http is None:
            return source
        if (name, http) not in self._copies:
            text = re.sub(r"(?m)^\[server\]$", f'[server]\nhttp = "{http}"', source.read_text())
            # The copy lives elsewhere, so its relative pythonpath becomes absolute.
            apps = json.dumps(str(APPS_DIR))
            text = re.sub(r"(?m)^pythonpath = .*$", f"pythonpath = [{apps}]", text)
            copy = self.workdir / f"{source.stem}-{http}.toml"
            copy.write_text(text)
            self._copies[name, http] = copy
        return self._copies[name, http]

    def supports_http(self, value: str) -> bool:
        """Whether this gateway knows `[server] http = value` (`gateway check` exits 0)."""
        probe = self.path("asgi-hello.toml", value)
        check = _py("gateway", "check", str(probe))
        return subprocess.run(check, capture_output=True, timeout=60, check=False).returncode == 0


def gateway_variant(configs: ConfigFiles, http: str | None) -> Server:
    """The gateway on each case's own mount file; `http` sets `[server] http` if given."""
    return Server(
        f"gateway-{http}" if http else "gateway",
        "gateway",
        # Rule "a case over HTTP/2": the `http` variants are the same HTTP/2 server.
        serves=lambda case: http is None or not case.http2,
        argv=lambda case, at: _gateway(configs.path(case.config, http), at),
        gateway_path=True,
        inherits_socket=True,
    )


def gateway_baseline(configs: ConfigFiles, name: str, config: Callable[[Case], str]) -> Server:
    """The gateway on a case's baseline mount file, `config(case)`, for the cases that
    have one: the mixed case's app alone ("beside two others" vs "alone"), the shadow
    case's app without its shadow (the p99 with vs without)."""
    return Server(
        name,
        "peer",
        serves=lambda case: bool(config(case)),
        argv=lambda case, at: _gateway(configs.path(config(case), None), at),
        inherits_socket=True,
    )


def all_servers(configs: ConfigFiles, gateway_http: list[str]) -> list[Server]:
    """The gateway, a variant per `[server] http` value it supports, then the peers.

    To add a gateway variant, add its value to --gateway-http (or to the list here).
    """
    servers = [gateway_variant(configs, None)]
    for value in gateway_http:
        if configs.supports_http(value):
            servers.append(gateway_variant(configs, value))
        else:
            print(f"note: this gateway has no [server] http = {value!r}; gateway-{value} skipped")
    baselines = [
        gateway_baseline(configs, "gateway-alone", lambda case: case.alone_config),
        gateway_baseline(configs, "gateway-noshadow", lambda case: case.noshadow_config),
    ]
    return [*servers, *baselines, *PEERS]
