"""Proxy headers: the client, scheme and host a trusted reverse proxy reports.

Behind a reverse proxy the direct peer is the proxy. The client's address, the scheme it
used and the host it asked for arrive in X-Forwarded-For, -Proto and -Host, or in the
RFC 7239 `Forwarded` field. Any client can send those fields, so they count only when
the direct peer is trusted (`forwarded_allow_ips`). Rules:

1. Trust is decided once per connection, from the direct peer's address ("unix" for a
   unix-socket peer), against a list parsed once per worker (ProxyTrust). Requests on a
   connection from an untrusted peer never read these fields; with `proxy_headers` off,
   none does.
2. One family per request, never a mix: if any X-Forwarded-For, -Proto or -Host field
   is present, those are read and `Forwarded` is ignored; otherwise `Forwarded` is.
   Nearly every proxy (nginx, HAProxy's forwardfor, cloud load balancers, Traefik,
   Caddy, Envoy) writes X-Forwarded-* and passes a client's own `Forwarded` through
   untouched: preferring `Forwarded` would let any client behind one of them choose
   its address. Mixing field by field would let a client add the host that an nginx
   setting only X-Forwarded-For and -Proto leaves unset. (Waitress reads X-Forwarded-*
   by default too.) A proxy that writes only `Forwarded` must drop X-Forwarded-*.
3. The client is the right-most hop of the chain that is not trusted: walking from the
   right skips our own proxies, and what lies left of the first untrusted hop was
   written by that untrusted party and is never used. If every hop is trusted, the
   client is the left-most one. A hop that cannot be read ends the walk: the client is
   then the last hop walked, or the direct peer when there is none.
4. Scheme and host come from the hop that named the client; the host replaces the Host
   field only with `forwarded_host` on, since many proxies (nginx among them) pass a
   client's own X-Forwarded-Host through, and a client that chooses the Host chooses the
   links an app writes into its mails (password-reset poisoning). X-Forwarded-Proto and
   -Host are aligned with X-Forwarded-For when each proxy appended to all three (the
   lists are as long); otherwise, and when no hop named the client, the right-most
   entry counts: the nearest proxy, which is trusted, wrote it. A proto other than
   http, https, ws or wss, or a host that is not `uri-host [":" port]` (RFC 9110 §7.2),
   is ignored.
5. Unknown and obfuscated clients: "unknown" and obfuscated identifiers (RFC 7239 §6.2,
   §6.3) are the client as the proxy names it, and are never trusted. A hop without a
   port has port 0 in `client`.
6. Malformed input is never an error: a field that cannot be read says nothing, and the
   request keeps what the connection knows.
7. Layer 1: stdlib only; no asyncio, socket, threading or signal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Headers = Sequence[tuple[bytes, bytes]]

TRUST_ANY = "*"
TRUST_UNIX = "unix"
# Proto values (RFC 7239 §5.4 uses URI schemes) and whether each means TLS to the proxy.
_SECURE_PROTOS = {"http": False, "https": True, "ws": False, "wss": True}
# RFC 9110 §5.6.2 token, §5.6.4 quoted-string (qdtext and quoted-pair, no controls).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_PAIR = re.compile(rf"({_TOKEN})=({_TOKEN}|{_QUOTED})")
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 7239 §6.3 obfnode and §6.1 obfport.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
# RFC 9110 §7.2 Host: uri-host [":" port]; uri-host is an IP-literal or a reg-name
# (unreserved, pct-encoded, sub-delims; RFC 3986 §3.2.2) or an IPv4 address.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]{0,5})?")
# The fields read, by their index in forwarded_origin's `fields`.
_FOR, _PROTO, _HOST_FIELD, _FORWARDED = range(4)
# The scope's scheme, by scope type, for a proxy link that is plain or TLS.
_SCHEMES = {"http": ("http", "https"), "websocket": ("ws", "wss")}
_FIELDS = {
    b"x-forwarded-for": _FOR,
    b"x-forwarded-proto": _PROTO,
    b"x-forwarded-host": _HOST_FIELD,
    b"forwarded": _FORWARDED,
}


class Node(NamedTuple):
    """One hop: an address (or identifier) and a port, 0 when not given."""

    host: str
    port: int
    is_address: bool  # an IP address, rather than "unknown" or an obfuscated name


@dataclass(frozen=True, slots=True)
class Origin:
    """What the proxy fields say; None where they say nothing (or nothing readable)."""

    client: tuple[str, int] | None = None
    secure: bool | None = None  # https/wss to the proxy; the connection's own otherwise
    host: bytes | None = None  # for the Host field the app sees


NOTHING = Origin()


class ProxyTrust:
    """`forwarded_allow_ips`, parsed: IP addresses, networks, "*" and "unix"; and
    whether a trusted proxy's host replaces the Host field (`forwarded_host`,
    rule "scheme and host come from the hop")."""

    __slots__ = ("_any", "_networks", "_unix_peers", "forwarded_host")

    def __init__(self, entries: Iterable[str], *, forwarded_host: bool = False) -> None:
        """Raises ValueError naming the first entry that is none of these."""
        self.forwarded_host = forwarded_host
        networks = []
        self._any = self._unix_peers = False
        for entry in entries:
            if entry == TRUST_ANY:
                self._any = True
            elif entry == TRUST_UNIX:
                self._unix_peers = True
            else:
                networks.append(_network(entry))
        self._networks: tuple[Network, ...] = tuple(networks)

    def trusts_peer(self, peer: tuple[str, int | None] | None, unix: bool) -> bool:
        """Whether the direct peer may speak for the client
        (rule "trust is decided once per connection")."""
        if unix:
            return self._unix_peers or self._any
        return peer is not None and self.trusts(peer[0])

    def trusts(self, host: str) -> bool:
        """Whether an address (a hop, or a TCP peer) is one of our proxies."""
        if self._any:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's "::ffff:10.0.0.1"
        return any(address in network for network in self._networks)


def _network(entry: str) -> Network:
    try:
        return ipaddress.ip_network(entry)  # strict: "10.0.0.1/8" is refused, not widened
    except ValueError as exc:
        raise ValueError(
            f'{entry!r} is not an IP address, a network, "*" or "unix": {exc}'
        ) from None


def forwarded_origin(headers: Headers, trust: ProxyTrust) -> Origin:
    """The client, scheme and host that the request's proxy fields report.

    Call it only for a trusted direct peer (rule "trust is decided once per
    connection"); the trust list then decides which hops of the chain are our own
    proxies (rule "the client is the right-most hop").
    """
    fields: list[list[str]] = [[], [], [], []]  # each field's lines, in order
    for name, value in headers:
        index = _FIELDS.get(name)
        if index is not None:
            fields[index].append(value.decode("latin-1"))
    # Rule "one family per request": any X-Forwarded-* field, and Forwarded is ignored.
    if fields[_FOR] or fields[_PROTO] or fields[_HOST_FIELD]:
        return _x_forwarded(fields, trust)
    if fields[_FORWARDED]:
        return _forwarded(", ".join(fields[_FORWARDED]), trust)  # RFC 9110 §5.3
    return NOTHING


def _x_forwarded(fields: list[list[str]], trust: ProxyTrust) -> Origin:
    hops = _entries(fields[_FOR])
    chosen = _walk(hops, trust)
    index = chosen[0] if chosen is not None else None
    protos, hosts = _entries(fields[_PROTO]), _entries(fields[_HOST_FIELD])
    return Origin(
        client=_client(chosen),
        secure=_secure(_aligned(protos, index, len(hops))),
        host=_host(_aligned(hosts, index, len(hops))),
    )


def _forwarded(value: str, trust: ProxyTrust) -> Origin:
    elements = _forwarded_elements(value)
    chosen = _walk([e.get("for") if e is not None else None for e in elements], trust)
    # The element that named the client, else the nearest proxy's (rule "scheme and host
    # come from the hop").
    element = elements[chosen[0] if chosen is not None else -1]
    if element is None:
        return NOTHING
    return Origin(
        client=_client(chosen),
        secure=_secure(element.get("proto")),
        host=_host(element.get("host")),
    )


def _walk(hops: Sequence[str | None], trust: ProxyTrust) -> tuple[int, Node] | None:
    """The hop that is the client and its index; None for the direct peer
    (rule "the client is the right-most hop")."""
    chosen = None
    for index in range(len(hops) - 1, -1, -1):
        text = hops[index]
        node = _node(text) if text is not None else None
        if node is None:
            break
        chosen = (index, node)
        if not (node.is_address and trust.trusts(node.host)):
            break
    return chosen


def _client(chosen: tuple[int, Node] | None) -> tuple[str, int] | None:
    return None if chosen is None else (chosen[1].host, chosen[1].port)


def _aligned(values: list[str], chosen: int | None, hops: int) -> str | None:
    """The entry that goes with the client's hop, else the nearest proxy's
    (rule "scheme and host come from the hop")."""
    if not values:
        return None
    if chosen is not None and len(values) == hops:
        return values[chosen]
    return values[-1]


def _entries(lines: list[str]) -> list[str]:
    """A comma-separated list over one or more field lines (RFC 9110 §5.3, §5.6.1);
    empty elements are dropped, as §5.6.1 asks of recipients."""
    return [item.strip() for line in lines for item in line.split(",") if item.strip()]


def _secure(proto: str | None) -> bool | None:
    return None if proto is None else _SECURE_PROTOS.get(proto.lower())


def _host(host: str | None) -> bytes | None:
    if host is None or not _HOST.fullmatch(host):
        return None
    return host.encode("ascii")


def _node(text: str) -> Node | None:
    """A hop, RFC 7239 §6 node: IPv4, "[IPv6]" (or a bare IPv6 address), "unknown" or
    an obfuscated name, each with an optional ":port"; None when it is none of these."""
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        return _named(inside, rest[1:], ipaddress.IPv6Address)
    if text.count(":") > 1:  # a bare IPv6 address; it cannot carry a port
        return _named(text, "", ipaddress.IPv6Address)
    name, _, port = text.partition(":")
    return _named(name, port, ipaddress.IPv4Address)


def _named(
    name: str, port_text: str, family: type[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> Node | None:
    port = _port(port_text)
    if port is None:
        return None
    if name.lower() == "unknown" or _OBFUSCATED.fullmatch(name):
        return Node(name, port, is_address=False)
    try:
        address = family(name)
    except ValueError:
        return None
    return Node(str(address), port, is_address=True)


def _port(text: str) -> int | None:
    """RFC 7239 §6 node-port: digits, or an obfuscated port (reported as 0)."""
    if not text:
        return 0
    if _PORT.fullmatch(text):
        port = int(text)
        return port if port <= 65535 else None
    return 0 if _OBFUSCATED.fullmatch(text) else None


def _forwarded_elements(value: str) -> list[dict[str, str] | None]:
    """RFC 7239 §4: forwarded-elements of `;`-separated pairs; None for an element that
    cannot be read (a bad pair, a parameter given twice). Never empty. An unclosed
    quote leaves nothing readable: the chain's end is lost in it."""
    parts = _split_outside_quotes(value, ",")
    elements = [_element(part) for part in parts or () if part.strip(" \t")]
    return elements or [None]


def _element(text: str) -> dict[str, str] | None:
    pairs: dict[str, str] = {}
    for pair in _split_outside_quotes(text, ";") or ():
        pair = pair.strip(" \t")
        if not pair:
            continue  # RFC 7239 §4: each pair is optional
        match = _PAIR.fullmatch(pair)
        name = match[1].lower() if match else ""
        if match is None or name in pairs:  # parameter names are case-insensitive (§4)
            return None
        pairs[name] = _unquote(match[2])
    return pairs


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


def _split_outside_quotes(text: str, separator: str) -> list[str] | None:
    """`text` split at `separator` where it is not inside a quoted string (RFC 9110
    §5.6.4); None when a quoted string does not close."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            escaped = char == "\\"
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def with_host(headers: Headers, host: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` with the Host field set to `host` (added when the request had none)."""
    replaced = [(name, host if name == b"host" else value) for name, value in headers]
    if not any(name == b"host" for name, _ in headers):
        replaced.append((b"host", host))
    return replaced


def apply_forwarded(scope: dict[str, Any], trust: ProxyTrust) -> None:
    """Put in an ASGI http or websocket scope what a trusted proxy's fields say: the
    `client`, the `scheme` and, with `forwarded_host`, the Host field (which ASGI apps,
    and WSGI's HTTP_HOST, build URLs from, as behind Werkzeug's ProxyFix)."""
    origin = forwarded_origin(scope["headers"], trust)
    if origin.client is not None:
        scope["client"] = origin.client
    if origin.secure is not None:
        scope["scheme"] = _SCHEMES[scope["type"]][origin.secure]
    if origin.host is not None and trust.forwarded_host:
        scope["headers"] = with_host(scope["headers"], origin.host)
