"""TLS on the listening sockets: one ssl.SSLContext per worker, from the [server] settings.

Rules:
1. Config stays inert: gateway/config/server_table.py only checks that the TLS settings go together.
   The files are read here, by the parent before it binds or forks (and again on a
   reload, which is how a renewed certificate is taken up), then by each worker for its
   own context. A file that cannot be read, a certificate or key that does not load, a
   key that does not match its certificate, a wrong password: a ConfigError naming the
   key (exit status 1) before anything is served.
2. TLS 1.2 and later (RFC 8996 retired 1.0 and 1.1). ALPN (RFC 7301) offers h2 first,
   then http/1.1, when `http2` is on (the connection hands a TLS connection that chose
   h2 to gateway/server/h2_connection.py); http/1.1 alone when it is off, and a client
   that offers only h2 then gets no ALPN answer rather than a failed handshake.
3. Client certificates (mTLS) are verified against `ca_certs` alone, never the system's
   CA store, which would admit a certificate from any public CA.
4. An encrypted key is never prompted for on a terminal (OpenSSL's default when no
   password is given): without the right keyfile_password it fails to load.
5. Every TLS wait is bounded: the handshake (TLS_HANDSHAKE_TIMEOUT_S), so a peer that
   connects and stalls, or sends garbage, costs the worker one socket for that long at
   most; and the closing exchange (TLS_SHUTDOWN_TIMEOUT_S). A failed handshake never
   reaches the connection layer: the event loop drops the socket and, being an OSError,
   logs it only in asyncio debug mode.
6. Each TLS connection's scope carries the ASGI TLS extension (`tls_extension`), made
   once per connection: the client's certificate as PEM, its subject as an RFC 4514
   name, the TLS version.
7. Layer 2, beside the connection: stdlib `ssl`, config and errors only.
"""

from __future__ import annotations

import ssl
from typing import Any

from gateway.config.loader import Config
from gateway.errors import ConfigError

ALPN_PROTOCOLS = ["h2", "http/1.1"]  # in our order of preference
ALPN_HTTP1_ONLY = ["http/1.1"]
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,  # verified when sent; a client without one is served
    "required": ssl.CERT_REQUIRED,
}
# A real handshake takes one or two round trips and a few milliseconds of CPU: well
# under a second, a few seconds on a lossy mobile link. Beyond 10 s (header_timeout's
# figure; uvloop's default is 60 s) the peer is stalled or hostile, and holds a socket
# and an SSL object until then (rule "every TLS wait is bounded").
TLS_HANDSHAKE_TIMEOUT_S = 10.0
# From closing a TLS connection until the socket is gone: flushing the last buffered
# bytes of a response (at most the transport's 64 KiB high-water mark, so a client
# reading at ~6.5 KiB/s still gets them) and the peer's close_notify, which a live peer
# sends within a round trip and RFC 8446 §6.1 does not require us to wait for. A
# vanished peer delays a graceful stop by this much at most (uvloop's default: 30 s).
TLS_SHUTDOWN_TIMEOUT_S = 10.0


# ASGI TLS extension 0.2: `tls_version` is the protocol's own number (RFC 8446 §4.1.2).
TLS_VERSION_NUMBERS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# RFC 4514 §3: the short names of attribute types, for those Python's ssl module reports
# by their long names; any other keeps the long name (the ssl module gives no OID).
_NAME_TYPES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_NAME_SPECIALS = frozenset('"+,;<>\\')  # RFC 4514 §2.4: escaped with a backslash


def server_context(config: Config) -> ssl.SSLContext | None:
    """The worker's SSLContext, or None when `certfile` is unset (plain HTTP).

    Raises ConfigError, naming the setting to fix, when a file does not load
    (rule "config stays inert").
    """
    server = config.server
    if not server.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_alpn_protocols(ALPN_PROTOCOLS if server.http2 else ALPN_HTTP1_ONLY)
    _load_chain(context, config)
    if server.ca_certs:
        _load_client_cas(context, config)
    context.verify_mode = VERIFY_MODES[server.client_cert]
    return context


def _load_chain(context: ssl.SSLContext, config: Config) -> None:
    server = config.server
    key_setting = "keyfile" if server.keyfile else "certfile"
    cert_text = _read(config, "certfile")
    key_text = _read(config, "keyfile") if server.keyfile else cert_text
    try:
        # A callable, so OpenSSL never prompts for a password
        # (rule "an encrypted key is never prompted for").
        context.load_cert_chain(
            server.certfile, server.keyfile or None, lambda: server.keyfile_password
        )
    except ssl.SSLError as exc:
        if "-----BEGIN CERTIFICATE-----" not in cert_text:
            raise _fail(config, "certfile", "holds no PEM certificate") from None
        if "PRIVATE KEY-----" not in key_text:
            raise _fail(config, key_setting, "holds no PEM private key") from None
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _fail(config, key_setting, "the key does not match certfile") from None
        if "ENCRYPTED" in key_text:  # PKCS#8 "ENCRYPTED PRIVATE KEY", or legacy Proc-Type
            reason = "does not decrypt the key" if server.keyfile_password else "is needed"
            raise _fail(config, "keyfile_password", f"{reason}: the key is encrypted") from None
        raise _fail(config, "certfile", f"does not load: {exc}") from None


def _load_client_cas(context: ssl.SSLContext, config: Config) -> None:
    _read(config, "ca_certs")
    try:
        context.load_verify_locations(cafile=config.server.ca_certs)
    except ssl.SSLError as exc:
        raise _fail(config, "ca_certs", f"holds no usable PEM certificate: {exc}") from None


def _read(config: Config, setting: str) -> str:
    path: str = getattr(config.server, setting)
    try:
        with open(path, encoding="latin-1") as file:
            return file.read()
    except OSError as exc:
        raise _fail(config, setting, f"cannot read {path!r}: {exc.strerror or exc}") from exc


def _fail(config: Config, setting: str, reason: str) -> ConfigError:
    return ConfigError(config.path, "server", setting, reason)


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension (version 0.2) for one connection
    (rule "each TLS connection's scope carries the ASGI TLS extension").

    `server_cert` is None: the ssl module does not hand back our own certificate, which
    the spec allows. A client certificate that did not verify failed the handshake, so
    `client_cert_error` is always None; `cipher_suite` is None too, as OpenSSL names the
    suite but the ssl module does not give its IANA number.
    """
    der = ssl_object.getpeercert(binary_form=True)
    peer = ssl_object.getpeercert()  # parsed only when verified; client_cert != "none"
    return {
        "server_cert": None,
        # Python < 3.13 exposes the client's own certificate, not the chain it sent.
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": distinguished_name(peer["subject"]) if peer else None,
        "client_cert_error": None,
        "tls_version": TLS_VERSION_NUMBERS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def distinguished_name(subject: Any) -> str:
    """A certificate subject, as the ssl module parses it, in RFC 4514 form: the last
    RDN first (§2.1), multi-valued RDNs joined by "+" (§2.2), values escaped (§2.4)."""
    return ",".join(
        "+".join(f"{_NAME_TYPES.get(kind, kind)}={_escape(value)}" for kind, value in rdn)
        for rdn in reversed(subject)
    )


def _escape(value: str) -> str:
    last = len(value) - 1
    escaped = []
    for index, char in enumerate(value):
        edge = (char == " " and index in (0, last)) or (char == "#" and index == 0)
        if char in _NAME_SPECIALS or edge:
            escaped.append("\\" + char)
        else:
            escaped.append("\\00" if char == "\0" else char)
    return "".join(escaped)
