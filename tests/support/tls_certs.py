"""Certificates made at test time (trustme): a CA, a server certificate, a client one.

Nothing is checked in: every run makes its own keys, so no test depends on a date or a
secret in the repository.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

KEY_PASSWORD = "correct horse"


@dataclass(frozen=True)
class Certs:
    """PEM files in one directory, and the CA that signed them."""

    ca: trustme.CA
    ca_pem: Path  # the CA's certificate: ca_certs, and what clients verify against
    cert: Path  # the server's certificate, for localhost and 127.0.0.1
    key: Path
    encrypted_key: Path  # the same key, encrypted with KEY_PASSWORD
    cert_and_key: Path  # both in one file (certfile alone)
    client: Path  # a client certificate and its key, signed by the same CA
    stranger: Path  # a client certificate from another CA

    def client_context(self, client_cert: Path | None = None) -> ssl.SSLContext:
        """What a client that trusts our CA uses; with a certificate of its own if given."""
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        if client_cert is not None:
            context.load_cert_chain(str(client_cert))
        return context


def make_certs(directory: Path) -> Certs:
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    paths = {
        name: directory / f"{name}.pem"
        for name in ("ca", "cert", "key", "encrypted_key", "cert_and_key", "client", "stranger")
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    server.private_key_and_cert_chain_pem.write_to_path(str(paths["cert_and_key"]))
    paths["encrypted_key"].write_bytes(_encrypted(server.private_key_pem.bytes()))
    client = ca.issue_cert("client@example.com")
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    stranger = trustme.CA().issue_cert("stranger@example.com")
    stranger.private_key_and_cert_chain_pem.write_to_path(str(paths["stranger"]))
    return Certs(
        ca=ca,
        ca_pem=paths["ca"],
        cert=paths["cert"],
        key=paths["key"],
        encrypted_key=paths["encrypted_key"],
        cert_and_key=paths["cert_and_key"],
        client=paths["client"],
        stranger=paths["stranger"],
    )


def _encrypted(key_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
    )
