"""Builds gateway with its per-request modules compiled by mypyc, from the same typed
source, where it can (issue 18, point 2); pyproject.toml holds everything else. Rules:
1. One source of truth: the compiled modules are the .py files below, as they are; the
   .py files are installed beside the compiled ones.
2. A build that cannot compile still installs: without mypyc, with
   GATEWAY_PURE_PYTHON=1, or where the C compiler fails, the package is pure Python
   (gateway/native.py says at start which form runs).
3. Only modules whose compiled form pays are listed (benchmarks/micro.py, pure against
   compiled; the figures are in the commit that lists them).
4. Every Python in pyproject.toml's classifiers (3.11, 3.12, 3.13) compiles the same
   list, so a class that CPython 3.12+ refuses in mypyc's form stays out of it:
   adapters/body_stream.py's BodyStream, an io.RawIOBase to which mypyc gives both
   Py_TPFLAGS_MANAGED_DICT and a tp_dictoffset.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

# The per-request path: sessions and response writer, router, cycle and connection,
# scopes, environ building and the WSGI bridge, less a streamed body's wsgi.input
# (rule "every Python"). Paths as the package installs them (adapters/ is
# gateway/adapters through its symlink).
COMPILED = [
    "gateway/http/session.py",
    "gateway/http/httptools_session.py",
    "gateway/http/h11_session.py",
    "gateway/http/response.py",
    "gateway/http/events.py",
    "gateway/http/first_bytes.py",
    "gateway/http/forwarded.py",
    "gateway/http/chunk_lines.py",
    "gateway/routing/router.py",
    "gateway/server/cycle.py",
    "gateway/server/connection.py",
    "gateway/server/scopes.py",
    "gateway/server/shared.py",
    "gateway/server/closing.py",
    "gateway/server/stream.py",
    "gateway/adapters/environ.py",
    "gateway/adapters/wsgi.py",
    "gateway/adapters/pool.py",
    "gateway/adapters/disconnect.py",
]


# The setuptools commands that build: the others (metadata, sdist) need no compile, and
# mypyc's type check of the package takes half a minute.
BUILDS = {"bdist_wheel", "build_ext", "build", "install"}


def compiled_extensions() -> list[Extension]:
    """mypyc's extensions for COMPILED, or none (rule "a build that cannot compile")."""
    if not BUILDS.intersection(sys.argv[1:]):
        return []
    if os.environ.get("GATEWAY_PURE_PYTHON") == "1":
        print("gateway: GATEWAY_PURE_PYTHON=1, building pure Python", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("gateway: mypyc is not installed, building pure Python", file=sys.stderr)
        return []
    try:
        extensions: list[Extension] = mypycify(COMPILED, opt_level="3", group_name="gateway")
    except (Exception, SystemExit) as error:  # mypy's type errors exit
        print(f"gateway: mypyc failed ({error!r}), building pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # a failed C compile leaves that module pure
    return extensions


setup(ext_modules=compiled_extensions())
