"""`user` and `group`: bind a low port as root, then serve as somebody else.

Rules:
1. The names are looked up before anything binds, so an unknown user or group is a
   ConfigError (exit status 1) with nothing opened yet.
2. The identity is dropped once every socket is bound and the pid file written, before
   any app is imported or worker forked (gateway/process/launcher.py `serve`): the apps and
   the workers never run as root. The order is the one that cannot be undone halfway:
   the supplementary groups first, then the group, then the user (after setuid, a
   process may no longer change its groups).
3. Changing identity needs root. Asked to become anybody else without it, the server
   refuses to start (exit status 1) rather than serve as the wrong user; asked to
   become who it already is, it goes on.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gateway.config.loader import Config
from gateway.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Identity:
    """The user and group to serve as; `user` is None when only the group changes."""

    user: str | None
    uid: int
    gid: int


def resolve_identity(config: Config) -> Identity | None:
    """The identity `user`/`group` ask for (rule "the names are looked up before
    anything binds"), or None when neither is set, or when it is the one the process
    already has (rule "changing identity needs root")."""
    server = config.server
    if not (server.user or server.group):
        return None
    user, uid, gid = None, os.geteuid(), os.getegid()
    if server.user:
        account = _user(server.user, config)
        user, uid, gid = account.pw_name, account.pw_uid, account.pw_gid
    if server.group:
        gid = _group(server.group, config).gr_gid
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return None
    if os.geteuid() != 0:
        key = "user" if server.user and uid != os.geteuid() else "group"
        reason = f"changing to another {key} needs root; this server runs as uid {os.geteuid()}"
        raise ConfigError(config.path, "server", key, reason)
    return Identity(user, uid, gid)


def _user(value: str, config: Config) -> pwd.struct_passwd:
    return _account(value, pwd.getpwnam, pwd.getpwuid, "user", config)


def _group(value: str, config: Config) -> grp.struct_group:
    return _account(value, grp.getgrnam, grp.getgrgid, "group", config)


def _account(
    value: str,
    by_name: Callable[[str], T],
    by_id: Callable[[int], T],
    key: str,
    config: Config,
) -> T:
    """The account (user or group) named `value`, or whose id it is when no account has
    that name."""
    try:
        return by_name(value)
    except KeyError:
        pass
    try:
        if value.isdigit():
            return by_id(int(value))
    except KeyError:
        pass
    raise ConfigError(config.path, "server", key, f"no {key} {value!r} on this system")


def drop_privileges(identity: Identity | None) -> None:
    """Become `identity` for good (rule "the identity is dropped once every socket is
    bound"); nothing when it is None."""
    if identity is None:
        return
    if identity.user is not None:
        os.initgroups(identity.user, identity.gid)  # the user's own supplementary groups
    else:
        os.setgroups([identity.gid])  # root's supplementary groups must not stay
    os.setgid(identity.gid)
    os.setuid(identity.uid)
