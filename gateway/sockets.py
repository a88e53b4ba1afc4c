"""Listening sockets: bound once, before any worker starts, and handed to the workers.

Rules:
1. Every address in `bind` is bound here and nowhere else (DESIGN §4): the supervisor
   binds, workers inherit. A failure closes whatever was already opened.
2. `unix:PATH`: a stale socket file (left by a server that died) is removed first, but
   never a file that is not a socket; `unix_socket_mode` sets its permissions.
3. `fd://N`: an inherited descriptor that is already listening (a process manager's).
4. systemd socket activation: when LISTEN_PID names this process, the LISTEN_FDS
   descriptors from 3 on are served instead of `bind` (sd_listen_fds(3)).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Sequence

from gateway.config import LISTEN_BACKLOG, Bind, ServerConfig
from gateway.errors import GatewayError

# sd_listen_fds(3): passed descriptors start at 3 (after stdin, stdout, stderr).
SD_LISTEN_FDS_START = 3


class BindError(GatewayError):
    """A socket in the mount file could not be bound (exit status 1)."""


def listening_sockets(server: ServerConfig) -> list[socket.socket]:
    """The sockets to serve: systemd's when it activated us (rule 4), else `bind`'s."""
    return systemd_sockets() or bind_sockets(server.bind, server.unix_socket_mode)


def systemd_sockets() -> list[socket.socket]:
    """Sockets passed by systemd socket activation (sd_listen_fds(3)), or [] if none.

    They are ours only when LISTEN_PID is this process; the variables are then removed,
    so a child process does not take the same descriptors for its own.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = os.environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count.isdigit():
        return []
    return bind_sockets([Bind("fd", fd=SD_LISTEN_FDS_START + n) for n in range(int(count))])


def bind_sockets(binds: Sequence[Bind], unix_socket_mode: int | None = None) -> list[socket.socket]:
    """Bind and listen on every address; close what was opened if one fails."""
    sockets: list[socket.socket] = []
    try:
        for bind in binds:
            sockets.append(bind_socket(bind, unix_socket_mode))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_socket(bind: Bind, unix_socket_mode: int | None = None) -> socket.socket:
    try:
        if bind.kind == "fd":
            sock = socket.socket(fileno=bind.fd)
        elif bind.kind == "unix":
            sock = _bind_unix(bind.path, unix_socket_mode)
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


def _bind_unix(path: str, mode: int | None) -> socket.socket:
    # A socket file left by a server that died would make bind fail; remove only sockets.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            os.chmod(path, mode)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock
