"""Listening sockets: bound once, before any worker starts, and handed to the workers.

Rules:
1. Every address in `bind` is bound here and nowhere else (DESIGN §4): the parent binds
   (gateway/process/launcher.py, or the reloader), and the workers or the server it runs
   inherit. A failure closes whatever was already opened and raises BindError (exit
   status 1) naming the address and the reason.
2. `unix:PATH`: a stale socket file (left by a server that died: nothing accepts on it)
   is removed first. A socket some live server still listens on is refused, never
   stolen, and so is a path that is not a socket (a regular file, a symlink, a
   directory): we remove nothing we did not make. `unix_socket_mode` sets the
   permissions before listen(), so no client ever connects under the umask's.
3. `fd://N`: an inherited descriptor that is already a listening stream socket (a
   process manager's, a test's); anything else is refused rather than listened on.
4. systemd socket activation: when LISTEN_PID names this process, the LISTEN_FDS
   descriptors from 3 on are served instead of `bind` (sd_listen_fds(3)).
5. The admin listener (`admin_bind`, gateway/server/admin.py) is bound here too, by the
   same parent, and travels beside the apps' sockets, never among them: a worker
   serves the admin app on it and nothing else. systemd's descriptors are the apps'.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Sequence

from gateway.config.bind import Bind
from gateway.config.limits import LISTEN_BACKLOG
from gateway.config.server_table import ServerConfig
from gateway.errors import GatewayError

# sd_listen_fds(3): passed descriptors start at 3 (after stdin, stdout, stderr).
SD_LISTEN_FDS_START = 3
# How long a connect() to an existing unix socket may take before we call it in use. A
# live server's kernel queue takes the connection at once; only a full backlog makes
# connect() wait, and that is a server alive enough that its socket must not be stolen.
LIVE_SOCKET_PROBE_S = 1.0


class BindError(GatewayError):
    """A socket in the mount file could not be bound (exit status 1)."""


def listening_sockets(server: ServerConfig) -> list[socket.socket]:
    """The sockets to serve: systemd's when it activated us (rule "systemd socket
    activation"), else `bind`'s."""
    return systemd_sockets() or bind_sockets(server.bind, server.unix_socket_mode, server.backlog)


def admin_socket(server: ServerConfig) -> socket.socket | None:
    """The admin listener's socket, or None when `admin_bind` is off (rule "the admin
    listener")."""
    if server.admin_bind is None:
        return None
    return bind_socket(server.admin_bind, server.unix_socket_mode, server.backlog)


def socket_files(sockets: Sequence[socket.socket], binds: Sequence[Bind]) -> list[str]:
    """The files of the unix sockets among `sockets` that `binds` made here (never one
    passed in by fd:// or systemd). Asked right after binding: a socket closed later by
    its asyncio server no longer knows its name."""
    ours = {bind.path for bind in binds if bind.kind == "unix"}
    named = [sock.getsockname() for sock in sockets if sock.family == socket.AF_UNIX]
    return [path for path in named if path in ours]


def close_sockets(sockets: Sequence[socket.socket], files: Sequence[str]) -> None:
    """Close the listening sockets and remove the socket `files` (from `socket_files`):
    a clean stop leaves nothing behind."""
    for sock in sockets:
        sock.close()
    for path in files:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)


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
    if not (count.isascii() and count.isdigit()):
        return []
    return bind_sockets([Bind("fd", fd=SD_LISTEN_FDS_START + n) for n in range(int(count))])


def bind_sockets(
    binds: Sequence[Bind], unix_socket_mode: int | None = None, backlog: int = LISTEN_BACKLOG
) -> list[socket.socket]:
    """Bind and listen on every address; close what was opened if one fails."""
    sockets: list[socket.socket] = []
    try:
        for bind in binds:
            sockets.append(bind_socket(bind, unix_socket_mode, backlog))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_socket(
    bind: Bind, unix_socket_mode: int | None = None, backlog: int = LISTEN_BACKLOG
) -> socket.socket:
    """One listening, non-blocking socket for `bind`; BindError says why not. `backlog`
    is the kernel's accept queue (an fd:// socket keeps the one it was passed with until
    a worker listens on it again, gateway/process/worker.py)."""
    try:
        if bind.kind == "fd":
            sock = _adopt_fd(bind.fd)
        elif bind.kind == "unix":
            sock = _bind_unix(bind.path, unix_socket_mode, backlog)
        else:
            sock = _bind_tcp(bind.host, bind.port, backlog)
    except _Refused as exc:
        raise BindError(f"cannot bind {bind}: {exc}") from None
    except OSError as exc:
        raise BindError(f"cannot bind {bind}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


class _Refused(Exception):
    """A bind we decline on purpose (rules "`unix:PATH`" and "`fd://N`"); the message
    is the reason."""


def _adopt_fd(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
    if sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours to close: whoever passed it may still use it
        raise _Refused("not a stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        # listen() on it would put an unbound TCP socket on a random port: refuse.
        sock.detach()
        raise _Refused("not a listening socket (the process that passed it must listen)")
    return sock


def _bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restart must not wait out the old server's connections in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # "[::]:8000" means IPv6 only, as written; list "0.0.0.0:8000" too for both.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str, mode: int | None, backlog: int) -> socket.socket:
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            os.chmod(path, mode)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file nothing listens on; refuse anything else at `path` (rule
    "`unix:PATH`")."""
    try:
        mode = os.lstat(path).st_mode  # lstat: a symlink is judged, never followed
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise _Refused(f"{path} exists and is not a socket; not removing it")
    if _is_listened_on(path):
        raise _Refused(f"another server is listening on {path}")
    os.unlink(path)


def _is_listened_on(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(LIVE_SOCKET_PROBE_S)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return False  # a socket file without a server: stale
        except TimeoutError:
            return True  # a full backlog: busy, but alive
        except OSError as exc:
            if exc.errno == errno.EAGAIN:  # the same full backlog, reported at once
                return True
            raise
    return True
