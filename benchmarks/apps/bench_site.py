"""The mixed site as a team would serve it without the gateway: one Starlette app that
mounts the WSGI app through a2wsgi and the ASGI app beside it, for the `mixed-*` cases'
peers (`granian-starlette`, `uvicorn-starlette`: one ASGI server runs the whole site).

Each site is built from the gateway's own mount file for the same case
(configs/mixed-site-*.toml), so both sides serve the same apps at the same prefixes;
`hello` amounts to

    Starlette(routes=[
        Mount("/api", app=bench_asgi.hello),
        Mount("/", app=WSGIMiddleware(bench_wsgi.hello, workers=10)),
    ])

Rules:
1. Longest prefix first: Starlette tries its routes in order, the gateway picks the
   longest prefix that matches, so the routes are sorted that way to route alike.
2. A WSGI mount runs in a2wsgi's pool of the mount's `threads` (10 in every file: the
   same pool size as every WSGI server in the benchmark, see apps/bench_a2wsgi.py).
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette
from starlette.routing import Mount

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def site(mount_file: str) -> Starlette:
    """A Starlette app with the mounts of configs/`mount_file`."""
    with (CONFIGS_DIR / mount_file).open("rb") as file:
        mounts = tomllib.load(file)["mount"]
    routes = []
    # Rule "longest prefix first".
    for mount in sorted(mounts, key=lambda m: len(m["prefix"].rstrip("/")), reverse=True):
        app = _load(mount["app"])
        if mount["interface"] == "wsgi":
            app = WSGIMiddleware(app, workers=mount["threads"])
        routes.append(Mount(mount["prefix"], app=app))
    return Starlette(routes=routes)


hello = site("mixed-site-hello.toml")
json = site("mixed-site-json.toml")
big = site("mixed-site-64k.toml")
