"""gateway.http.forwarded: the client, scheme and host a trusted proxy reports, and nothing else.

The headers are lists of (name, value) bytes as the HTTP sessions hand them over: names
lowercased, repeats kept.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.http.forwarded import (
    NOTHING,
    Origin,
    ProxyTrust,
    apply_forwarded,
    forwarded_origin,
    with_host,
)

Headers = list[tuple[bytes, bytes]]
LOCAL = ProxyTrust(["127.0.0.1", "::1"])
INTERNAL = ProxyTrust(["10.0.0.0/8", "fd00::/8"])


def fields(*pairs: tuple[str, str]) -> Headers:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in pairs]


def origin(trust: ProxyTrust, *pairs: tuple[str, str]) -> Origin:
    return forwarded_origin(fields(*pairs), trust)


# --- the trust list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "host", "trusted"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["10.0.0.0/8"], "10.200.3.4", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # a dual-stack socket's IPv4 peer
        (["fd00::/8"], "fd12::1", True),
        (["fd00::/8"], "fe80::1", False),
        (["::1"], "0:0:0:0:0:0:0:1", True),
        (["*"], "203.0.113.9", True),
        (["*"], "2001:db8::1", True),
        (["10.0.0.0/8"], "not-an-address", False),
        (["unix"], "127.0.0.1", False),
        ([], "127.0.0.1", False),
    ],
)
def test_trust_list_matches_addresses_and_networks(
    entries: list[str], host: str, trusted: bool
) -> None:
    assert ProxyTrust(entries).trusts(host) is trusted


def test_unix_peers_are_trusted_only_by_unix_or_star() -> None:
    assert ProxyTrust(["unix"]).trusts_peer(None, unix=True)
    assert ProxyTrust(["*"]).trusts_peer(None, unix=True)
    assert not ProxyTrust(["127.0.0.1", "::1"]).trusts_peer(None, unix=True)
    assert not ProxyTrust(["unix"]).trusts_peer(("127.0.0.1", 5000), unix=False)
    assert LOCAL.trusts_peer(("127.0.0.1", 5000), unix=False)
    assert not LOCAL.trusts_peer(None, unix=False)  # a peer the socket did not name


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.1/8", "300.1.1.1", "10.0.0.0/33", ""])
def test_trust_list_refuses_what_is_not_an_address(entry: str) -> None:
    with pytest.raises(ValueError, match=repr(entry)):
        ProxyTrust(["127.0.0.1", entry])


# --- X-Forwarded-* --------------------------------------------------------------------------


def test_one_proxy_sets_client_scheme_and_host() -> None:
    got = origin(
        LOCAL,
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "example.com"),
    )
    assert got == Origin(client=("203.0.113.7", 0), secure=True, host=b"example.com")


def test_a_chain_yields_its_right_most_untrusted_address() -> None:
    # The client forged the first entry; our proxies appended the last two.
    chain = "1.1.1.1, 203.0.113.7, 10.0.0.2, 10.0.0.1"
    assert origin(INTERNAL, ("X-Forwarded-For", chain)).client == ("203.0.113.7", 0)


def test_a_chain_over_several_field_lines_is_one_list() -> None:
    got = origin(
        INTERNAL,
        ("X-Forwarded-For", "1.1.1.1, 203.0.113.7"),
        ("X-Forwarded-For", "10.0.0.2"),
    )
    assert got.client == ("203.0.113.7", 0)


def test_every_hop_trusted_yields_the_left_most() -> None:
    assert origin(INTERNAL, ("X-Forwarded-For", "10.0.0.9, 10.0.0.1")).client == ("10.0.0.9", 0)
    star = ProxyTrust(["*"])
    assert origin(star, ("X-Forwarded-For", "1.1.1.1, 10.0.0.1")).client == ("1.1.1.1", 0)


def test_addresses_with_ports_and_ipv6() -> None:
    assert origin(LOCAL, ("X-Forwarded-For", "203.0.113.7:4711")).client == ("203.0.113.7", 4711)
    assert origin(LOCAL, ("X-Forwarded-For", "2001:DB8::1")).client == ("2001:db8::1", 0)
    assert origin(LOCAL, ("X-Forwarded-For", "[2001:db8::1]:443")).client == ("2001:db8::1", 443)
    assert origin(INTERNAL, ("X-Forwarded-For", "2001:db8::7, fd00::1")).client == (
        "2001:db8::7",
        0,
    )


def test_an_unreadable_hop_ends_the_walk_at_the_last_address_walked() -> None:
    # Left of the client, anything goes: it is never read.
    assert origin(INTERNAL, ("X-Forwarded-For", "<script>, 203.0.113.7")).client == (
        "203.0.113.7",
        0,
    )
    # An unreadable entry where our proxies' chain ends: the last trusted hop stands.
    assert origin(INTERNAL, ("X-Forwarded-For", "bogus, 10.0.0.3, 10.0.0.1")).client == (
        "10.0.0.3",
        0,
    )
    # Nothing readable at all: the direct peer stands.
    for junk in ("bogus", "1.2.3.4:99999", "[::1", "1.2.3.4:x", "", " , "):
        assert origin(LOCAL, ("X-Forwarded-For", junk)).client is None, junk


def test_proto_and_host_align_with_the_client_when_every_proxy_appended() -> None:
    got = origin(
        INTERNAL,
        ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
        ("X-Forwarded-Proto", "https, http"),
        ("X-Forwarded-Host", "example.com, internal.lan"),
    )
    assert got == Origin(client=("203.0.113.7", 0), secure=True, host=b"example.com")


def test_proto_and_host_otherwise_come_from_the_nearest_proxy() -> None:
    got = origin(
        INTERNAL,
        ("X-Forwarded-For", "1.1.1.1, 203.0.113.7, 10.0.0.1"),
        ("X-Forwarded-Proto", "http, https"),  # a client's forgery, then the proxy's
    )
    assert got.secure is True
    assert origin(LOCAL, ("X-Forwarded-Proto", "WSS")).secure is True
    assert origin(LOCAL, ("X-Forwarded-Proto", "ws")).secure is False


@pytest.mark.parametrize("proto", ["ftp", "https;x", "", "http s"])
def test_an_unknown_proto_is_ignored(proto: str) -> None:
    assert origin(LOCAL, ("X-Forwarded-Proto", proto)).secure is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", b"example.com"),
        ("example.com:8443", b"example.com:8443"),
        ("[2001:db8::1]:443", b"[2001:db8::1]:443"),
        ("xn--bcher-kva.example", b"xn--bcher-kva.example"),
        ("bad host", None),
        ("evil.com/path", None),
        ("user@evil.com", None),
        ("exa\x00mple.com", None),
        ("example.com:80x", None),
    ],
)
def test_a_host_must_be_a_uri_host(host: str, expected: bytes | None) -> None:
    assert origin(LOCAL, ("X-Forwarded-Host", host)).host == expected


def test_no_proxy_fields_say_nothing() -> None:
    assert origin(LOCAL, ("Host", "example.com"), ("Accept", "*/*")) is NOTHING


# --- Forwarded (RFC 7239) -------------------------------------------------------------------


def test_forwarded_names_client_scheme_and_host() -> None:
    got = origin(LOCAL, ("Forwarded", 'for=203.0.113.7;proto=https;host="example.com:8443"'))
    assert got == Origin(client=("203.0.113.7", 0), secure=True, host=b"example.com:8443")


def test_forwarded_ipv6_in_quotes_and_brackets_with_a_port() -> None:
    got = origin(LOCAL, ("Forwarded", 'For="[2001:db8:cafe::17]:4711"'))
    assert got.client == ("2001:db8:cafe::17", 4711)


def test_forwarded_chain_and_the_element_that_named_the_client() -> None:
    value = "for=1.1.1.1;proto=http, for=203.0.113.7;proto=https;host=example.com, for=10.0.0.1"
    got = origin(INTERNAL, ("Forwarded", value))
    assert got == Origin(client=("203.0.113.7", 0), secure=True, host=b"example.com")


def test_forwarded_over_several_field_lines() -> None:
    got = origin(
        INTERNAL, ("Forwarded", "for=203.0.113.7;proto=https"), ("Forwarded", "for=10.0.0.1")
    )
    assert got == Origin(client=("203.0.113.7", 0), secure=True)


def test_forwarded_unknown_and_obfuscated_identifiers_are_the_client() -> None:
    assert origin(LOCAL, ("Forwarded", "for=unknown")).client == ("unknown", 0)
    assert origin(LOCAL, ("Forwarded", "for=_hidden")).client == ("_hidden", 0)
    assert origin(LOCAL, ("Forwarded", 'for="_gazonk:_port"')).client == ("_gazonk", 0)
    # Never trusted, even by "*": the walk stops at them.
    star = ProxyTrust(["*"])
    assert origin(star, ("Forwarded", "for=1.1.1.1, for=_proxy7, for=10.0.0.1")).client == (
        "_proxy7",
        0,
    )


def test_forwarded_quoted_strings_may_hold_separators() -> None:
    got = origin(LOCAL, ("Forwarded", 'for=203.0.113.7;host="a,b;c", for=127.0.0.1'))
    assert got.client == ("203.0.113.7", 0)
    assert got.host == b"a,b;c"  # sub-delims are allowed in a reg-name


def test_forwarded_without_for_still_gives_the_nearest_proxys_scheme_and_host() -> None:
    got = origin(LOCAL, ("Forwarded", "proto=https;host=example.com"))
    assert got == Origin(client=None, secure=True, host=b"example.com")


@pytest.mark.parametrize(
    "value",
    [
        'for="203.0.113.7',  # the quote never closes
        "for=203.0.113.7;for=1.1.1.1",  # a parameter twice in one element
        "for=[2001:db8::1]",  # brackets are not a token: it must be quoted
        "for 203.0.113.7",
        "for=",
        "=https",
        "for=203.0.113.7;;proto=https\x7f",
        "for=a.b.c.d",
        ",,,",
    ],
)
def test_a_forwarded_field_that_cannot_be_read_says_nothing(value: str) -> None:
    assert origin(LOCAL, ("Forwarded", value)) == NOTHING


def test_a_client_cannot_hijack_the_proxys_element_with_an_open_quote() -> None:
    # The client sent `Forwarded: for="1.1.1.1` and the proxy appended its element.
    value = 'for="1.1.1.1, for="[2001:db8::9]:1234"'
    assert origin(LOCAL, ("Forwarded", value)) == NOTHING


def test_empty_elements_and_pairs_are_skipped() -> None:
    got = origin(LOCAL, ("Forwarded", " , for=203.0.113.7;;proto=https , "))
    assert got == Origin(client=("203.0.113.7", 0), secure=True)


# --- one family per request -----------------------------------------------------------------


def test_x_forwarded_wins_over_forwarded_as_a_whole() -> None:
    # nginx set X-Forwarded-For and -Proto; the client sent its own Forwarded field.
    got = origin(
        LOCAL,
        ("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "http"),
    )
    assert got == Origin(client=("203.0.113.7", 0), secure=False, host=None)


# --- the Host field the app sees ------------------------------------------------------------


def test_with_host_replaces_the_host_field_in_place() -> None:
    headers = fields(("Host", "internal:8000"), ("Accept", "*/*"))
    assert with_host(headers, b"example.com") == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert headers[0] == (b"host", b"internal:8000")  # the request's own list is untouched


def test_with_host_adds_one_when_the_request_had_none() -> None:
    assert with_host(fields(("Accept", "*/*")), b"example.com") == [
        (b"accept", b"*/*"),
        (b"host", b"example.com"),
    ]


def test_apply_forwarded_replaces_host_only_with_forwarded_host() -> None:
    """issue 13, point 12: X-Forwarded-Host is opt-in; client and scheme are not."""

    def scope_after(trust: ProxyTrust) -> dict[str, Any]:
        scope: dict[str, Any] = {
            "type": "http",
            "scheme": "http",
            "client": ("127.0.0.1", 5000),
            "headers": fields(
                ("host", "internal:8000"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
            ),
        }
        apply_forwarded(scope, trust)
        return scope

    default = scope_after(ProxyTrust(["127.0.0.1"]))
    assert (default["client"], default["scheme"]) == (("203.0.113.7", 0), "https")
    assert dict(default["headers"])[b"host"] == b"internal:8000"
    opted_in = scope_after(ProxyTrust(["127.0.0.1"], forwarded_host=True))
    assert dict(opted_in["headers"])[b"host"] == b"evil.example"
