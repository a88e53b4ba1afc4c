"""The parent process (DESIGN §4): everything before serving, in its order, then serve
in this process or supervise N workers that inherit the sockets.

`workers = 1` serves in this process (gateway/process/single.py): container mode, where
the orchestrator replicates. `workers > 1` supervises (gateway/process/supervisor.py).

Rules:
1. What can be refused is refused before anything binds (exit status 1): a certificate
   that does not load, metrics without prometheus_client, an unknown user or group.
2. Before serving, in this order: look up `user` and `group`, change to `chdir`, import
   the hooks and run on_starting (gateway/process/hooks.py), bind, write the pid file,
   drop privileges; only then are apps imported (in the supervisor with `preload`, else
   in the workers, or here with one worker) or workers forked.
3. One worker and several are served from the same binding: the choice is made here,
   once, and nothing above it differs.
4. However serving ends, the sockets are closed and the pid file removed on the way out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace

from gateway.config.loader import Config
from gateway.config.server_table import PROCESS_PATHS
from gateway.errors import ConfigError
from gateway.process.hooks import Hooks, ServerInfo
from gateway.process.mounts import use_pythonpath
from gateway.process.pidfile import PidFile
from gateway.process.privileges import drop_privileges, resolve_identity
from gateway.process.single import serve_alone
from gateway.process.sockets import admin_socket, close_sockets, listening_sockets, socket_files
from gateway.process.supervisor import Supervisor
from gateway.server import metrics
from gateway.server.tls import server_context

# The parent's lines keep the logger they had before this module was split out of the
# supervisor, so that a --log-config that filters on it still sees them.
log = logging.getLogger("gateway.supervisor")


def serve(config: Config, overrides: Mapping[str, object] | None = None) -> int:
    """Bind, then serve (one worker) or supervise (several); return the exit status.

    `overrides` are the command line's settings, applied again when the mount file is
    re-read (SIGHUP).
    """
    server_context(config)  # a certificate that does not load: exit 1 before binding
    metrics.require(config.server)  # metrics or admin_bind without prometheus_client: exit 1
    identity = resolve_identity(config)  # an unknown user: exit 1 before binding too
    config, overrides = change_directory(config, overrides or {})
    use_pythonpath(config)
    hooks = Hooks.load(config)  # rule "before serving, in this order"
    hooks.run_before_serving("on_starting", ServerInfo(config, os.getpid()))
    sockets = listening_sockets(config.server)
    files = socket_files(sockets, config.server.bind)
    pid_file = PidFile(config.server.pid)
    admin = None
    try:
        admin = admin_socket(config.server)  # gateway/process/sockets.py, rule "the admin listener"
        if admin is not None and config.server.admin_bind is not None:
            files += socket_files([admin], [config.server.admin_bind])
        pid_file.write()
        drop_privileges(identity)  # before any app is imported or worker forked
        if config.server.workers == 1:
            metrics.check_user_directory(config.server)  # the supervisor's own does it else
            return serve_alone(config, sockets, hooks, admin)
        return Supervisor(config, overrides, sockets, hooks, admin).run()
    finally:
        close_sockets([*sockets, *([admin] if admin else [])], files)  # "however serving ends"
        pid_file.remove()


def change_directory(
    config: Config, overrides: Mapping[str, object]
) -> tuple[Config, Mapping[str, object]]:
    """`chdir`: the working directory the hooks and apps see (and relative unix: socket
    paths, bound after it). The mount file's own paths were made absolute when it was
    read; the file itself, and the command line's paths, are made so here, so that a
    HUP re-reads the same file with the same settings."""
    directory = config.server.chdir
    if not directory:
        return config, overrides
    config = replace(config, path=os.path.abspath(config.path))
    typed = {key: getattr(config.server, key) for key in PROCESS_PATHS if key in overrides}
    overrides = {**overrides, **typed}
    try:
        os.chdir(directory)
    except OSError as exc:
        reason = f"cannot change to {directory!r}: {exc.strerror or exc}"
        raise ConfigError(config.path, "server", "chdir", reason) from exc
    log.info("working directory: %s", directory)
    return config, overrides
