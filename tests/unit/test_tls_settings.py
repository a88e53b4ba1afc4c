"""TLS settings: config checks that they go together (inert), gateway.server.tls reads the files.

Every mistake is a ConfigError that names the key to fix, and `gateway serve` exits 1
on it before it binds anything.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from support.tls_certs import KEY_PASSWORD, Certs, make_certs

from gateway.cli import main
from gateway.config.loader import Config, load_config
from gateway.errors import ConfigError
from gateway.server.tls import ALPN_PROTOCOLS, distinguished_name, server_context

MOUNT = '[[mount]]\nprefix = "/"\napp = "probe_asgi:app"\ninterface = "asgi"\n'


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def config(tmp_path: Path, **settings: str) -> Config:
    lines = "".join(f"{key} = {value!r}\n" for key, value in settings.items())
    path = tmp_path / "gateway.toml"
    path.write_text(f"[server]\n{lines}{MOUNT}")
    return load_config(path)


def config_error(tmp_path: Path, **settings: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        server_context(config(tmp_path, **settings))
    return caught.value


# --- config: inert, the settings must go together -----------------------------------------


@pytest.mark.parametrize(
    ("settings", "key", "reason"),
    [
        ({"keyfile": "key.pem"}, "keyfile", "needs certfile"),
        ({"keyfile_password": "x"}, "keyfile_password", "needs certfile"),
        ({"ca_certs": "ca.pem"}, "ca_certs", "needs certfile"),
        ({"client_cert": "required"}, "client_cert", "needs certfile"),
        ({"certfile": "c.pem", "client_cert": "optional"}, "client_cert", "needs ca_certs"),
        ({"certfile": "c.pem", "ca_certs": "ca.pem"}, "ca_certs", 'client_cert = "optional"'),
        ({"certfile": "c.pem", "client_cert": "sometimes"}, "client_cert", "must be one of"),
    ],
)
def test_settings_that_do_not_go_together(
    tmp_path: Path, settings: dict[str, str], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, **settings)
    assert (caught.value.table, caught.value.key) == ("server", key)
    assert reason in str(caught.value)


def test_config_opens_no_file_and_resolves_paths_beside_the_mount_file(tmp_path: Path) -> None:
    loaded = config(
        tmp_path, certfile="tls/missing.pem", ca_certs="/abs/ca.pem", client_cert="required"
    )
    assert loaded.server.certfile == str(tmp_path / "tls" / "missing.pem")
    assert loaded.server.ca_certs == "/abs/ca.pem"
    assert loaded.server.keyfile == ""


def test_forwarded_allow_ips_is_checked_when_loaded(tmp_path: Path) -> None:
    assert config(tmp_path).server.forwarded_allow_ips == ("127.0.0.1", "::1")
    path = tmp_path / "gateway.toml"
    path.write_text(f'[server]\nforwarded_allow_ips = ["10.0.0.0/8", "proxy.lan"]\n{MOUNT}')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "forwarded_allow_ips"
    assert "'proxy.lan'" in str(caught.value)


# --- gateway.server.tls: the files, read when serving starts ---------------------------------


def test_no_certfile_is_plain_http(tmp_path: Path) -> None:
    assert server_context(config(tmp_path)) is None


def test_a_context_for_tls_1_2_and_later_without_client_certificates(
    tmp_path: Path, certs: Certs
) -> None:
    context = server_context(config(tmp_path, certfile=str(certs.cert), keyfile=str(certs.key)))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert ALPN_PROTOCOLS == ["h2", "http/1.1"]


def test_client_certificates_are_checked_against_ca_certs_alone(
    tmp_path: Path, certs: Certs
) -> None:
    context = server_context(
        config(
            tmp_path,
            certfile=str(certs.cert_and_key),
            ca_certs=str(certs.ca_pem),
            client_cert="required",
        )
    )
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    # Our CA only: the system's store would admit any public CA's customer.
    ours = x509.load_pem_x509_certificate(certs.ca_pem.read_bytes()).serial_number
    assert [int(str(ca["serialNumber"]), 16) for ca in context.get_ca_certs()] == [ours]


def test_an_encrypted_key_loads_with_its_password(tmp_path: Path, certs: Certs) -> None:
    settings = {"certfile": str(certs.cert), "keyfile": str(certs.encrypted_key)}
    assert server_context(config(tmp_path, **settings, keyfile_password=KEY_PASSWORD))


@pytest.mark.parametrize(
    ("files", "key", "reason"),
    [
        ({"certfile": "missing.pem"}, "certfile", "cannot read"),
        ({"certfile": "CERT", "keyfile": "missing.pem"}, "keyfile", "cannot read"),
        ({"certfile": "JUNK", "keyfile": "KEY"}, "certfile", "no PEM certificate"),
        ({"certfile": "CERT", "keyfile": "JUNK"}, "keyfile", "no PEM private key"),
        ({"certfile": "CERT"}, "certfile", "no PEM private key"),
        ({"certfile": "CERT", "keyfile": "CLIENT"}, "keyfile", "does not match"),
        ({"certfile": "CERT", "keyfile": "ENCRYPTED"}, "keyfile_password", "is needed"),
        (
            {"certfile": "CERT", "keyfile": "ENCRYPTED", "keyfile_password": "wrong"},
            "keyfile_password",
            "does not decrypt",
        ),
    ],
)
def test_files_that_do_not_load_name_the_key_to_fix(
    tmp_path: Path, certs: Certs, files: dict[str, str], key: str, reason: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM file\n")
    known = {
        "CERT": certs.cert,
        "KEY": certs.key,
        "JUNK": junk,
        "CLIENT": certs.client,
        "ENCRYPTED": certs.encrypted_key,
    }
    settings = {name: str(known.get(value, value)) for name, value in files.items()}
    error = config_error(tmp_path, **settings)
    assert (error.table, error.key) == ("server", key)
    assert reason in str(error)


def test_ca_certs_that_hold_no_certificate(tmp_path: Path, certs: Certs) -> None:
    error = config_error(
        tmp_path,
        certfile=str(certs.cert_and_key),
        ca_certs=str(certs.key),
        client_cert="optional",
    )
    assert error.key == "ca_certs"


def test_check_fails_when_the_certificate_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[server]\ncertfile = "absent.pem"\n{MOUNT}')
    assert main(["check", str(path)]) == 1
    assert "[server] certfile: cannot read" in capsys.readouterr().err


# --- the ASGI TLS extension's client_cert_name ----------------------------------------------


@pytest.mark.parametrize(
    "rdns",
    [
        [("countryName", "US"), ("organizationName", "trustme"), ("commonName", "client")],
        [("commonName", " #lead+trail "), ("organizationName", 'A, B; "C" <D> \\E')],
        [("domainComponent", "com"), ("domainComponent", "example"), ("userId", "u1")],
    ],
)
def test_client_cert_name_is_rfc_4514(rdns: list[tuple[str, str]]) -> None:
    oids = {
        "countryName": x509.NameOID.COUNTRY_NAME,
        "organizationName": x509.NameOID.ORGANIZATION_NAME,
        "commonName": x509.NameOID.COMMON_NAME,
        "domainComponent": x509.NameOID.DOMAIN_COMPONENT,
        "userId": x509.NameOID.USER_ID,
    }
    name = x509.Name([x509.NameAttribute(oids[kind], value) for kind, value in rdns])
    # The ssl module's form: a tuple of RDNs, each a tuple of (type, value) pairs.
    parsed = tuple(((kind, value),) for kind, value in rdns)
    assert distinguished_name(parsed) == name.rfc4514_string()
