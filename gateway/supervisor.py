"""The parent process: bind every socket once, then serve.

For now (`workers = 1`) the parent serves in its own process. The supervisor of DESIGN §4
(spawn, watch, respawn, reload) comes in a later issue; binding already happens here,
before any worker starts, so those sockets can be handed to workers unchanged.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Sequence

from gateway import worker
from gateway.config import LISTEN_BACKLOG, Bind, Config
from gateway.errors import GatewayError


class BindError(GatewayError):
    """A socket in the mount file could not be bound (exit status 1)."""


def bind_sockets(binds: Sequence[Bind]) -> list[socket.socket]:
    """Bind and listen on every address; close what was opened if one fails."""
    sockets: list[socket.socket] = []
    try:
        for bind in binds:
            sockets.append(bind_socket(bind))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_socket(bind: Bind) -> socket.socket:
    try:
        if bind.kind == "fd":
            sock = socket.socket(fileno=bind.fd)
        elif bind.kind == "unix":
            sock = _bind_unix(bind.path)
        else:
            sock = _bind_tcp(bind.host, bind.port)
    except OSError as exc:
        raise BindError(f"cannot bind {bind}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def _bind_tcp(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str) -> socket.socket:
    # A socket file left by a server that died would make bind fail; remove only sockets.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def serve(config: Config) -> int:
    """Bind, then serve in this process; return the exit status."""
    sockets = bind_sockets(config.server.bind)
    try:
        return worker.run(config, sockets)
    finally:
        for sock in sockets:
            sock.close()
