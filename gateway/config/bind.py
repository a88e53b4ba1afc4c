"""Listening addresses as written in the mount file or on the command line.

Rules:
1. Four forms: "host:port" (IPv4 or a host name), "[v6]:port", "unix:/path", "fd://N".
   A bare IPv6 address without brackets is refused: its colons would be ambiguous.
2. Every malformed address is a ValueError with the reason; gateway/config/loader.py adds the
   file, table and key.
3. `str(bind)` is the canonical form, and reads back to the same Bind.
4. Layer 1: stdlib only; nothing is resolved or bound here (gateway/process/sockets.py binds).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Bind:
    """One listening address: "host:port", "[v6]:port", "unix:/path" or "fd://N"."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""  # tcp: IPv4, IPv6 (no brackets) or a hostname
    port: int = 0  # tcp: 0..65535; 0 asks the OS for a free port
    path: str = ""  # unix: the socket path, non-empty
    fd: int = -1  # fd: an inherited, already listening descriptor (systemd, supervisors)

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """Parse one bind address. Raises ValueError with the reason when it is malformed."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ValueError(f"{text!r}: empty unix socket path")
        return Bind("unix", path=text[5:])
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "fd":
            raise ValueError(f"{text!r}: unknown scheme {scheme!r} (use host:port, unix:, fd://)")
        if not _is_decimal(rest):  # no sign allowed: descriptors are >= 0
            raise ValueError(f"{text!r}: fd:// needs a descriptor number >= 0")
        return Bind("fd", fd=int(rest))
    host, port = _split_host_port(text)
    return Bind("tcp", host=host, port=port)


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep and _is_decimal(text):  # "9000": a port alone, as --port takes it
        raise ValueError(
            f"{text!r}: missing host (write 127.0.0.1:{text} for this machine only, "
            f"or 0.0.0.0:{text} for every interface)"
        )
    if not sep or (host.startswith("[") and not host.endswith("]")):
        raise ValueError(f"{text!r}: missing port (write host:port, e.g. 127.0.0.1:8000)")
    if not _is_decimal(port_text) or int(port_text) > 65535:
        raise ValueError(f"{text!r}: port must be a number 0..65535")
    return _check_host(host, text), int(port_text)


def _check_host(host: str, text: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv6 address") from None
    if ":" in host:
        raise ValueError(f"{text!r}: an IPv6 address needs brackets, e.g. [::1]:8000")
    if not host:
        raise ValueError(f"{text!r}: missing host (e.g. 127.0.0.1 or 0.0.0.0)")
    if _is_decimal(host.replace(".", "")):  # looks numeric: must be a real IPv4 address
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv4 address") from None
    if not _is_hostname(host):
        raise ValueError(f"{text!r}: {host!r} is not a valid host name")
    return host


def _is_decimal(text: str) -> bool:
    # str.isdigit alone accepts "²" and Arabic-Indic digits, which int() may then reject.
    return text.isascii() and text.isdigit()


def _is_hostname(host: str) -> bool:
    # RFC 1123 §2.1: labels of letters, digits and inner hyphens, at most 63 octets each.
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63
        and label.isascii()
        and label.replace("-", "").isalnum()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )
