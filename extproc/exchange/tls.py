"""The TLS of the database fronts: the context their clients see, and the one the
gateway reaches a target's server with.

Both fronts take TLS the same way: the front's certificate for clients that ask for it
(`server_context`; PostgreSQL's SSLRequest, MySQL's), and to a target's server as the
target's mode says, libpq's sslmode by name and meaning (`client_context`: PostgreSQL's
`sslmode`, MySQL's `tls`). What differs, the protocol's way of asking for TLS, stays in
each front.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

# The modes that check the server's certificate: its chain (verify-ca), and its name too
# (verify-full). The others (disable, allow, prefer, require) take it unverified.
VERIFIED = frozenset({"verify-ca", "verify-full"})


def server_context(cert_file: os.PathLike[str] | str, key_file: os.PathLike[str] | str
                   ) -> ssl.SSLContext:
    """The TLS clients see (sslmode=require verifies nothing; verify-full checks the
    certificate against the CA the client trusts)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context(mode: str, ca_file: Path | None = None, cert_file: Path | None = None,
                   key_file: Path | None = None) -> ssl.SSLContext:
    """The TLS the gateway reaches a target's server with, as `mode` says: verified
    (`VERIFIED`) against `ca_file` alone, as libpq's sslrootcert is (the system's CAs
    beside it would let verify-ca, which checks no name, take any server holding a
    certificate of any public CA), else the system's CAs; `cert_file` and `key_file` a
    client certificate. OSError (ssl.SSLError too) for a file that cannot be read or
    used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if mode in VERIFIED:
        if ca_file is not None:
            context.load_verify_locations(ca_file)
        else:
            context.load_default_certs()
        context.check_hostname = mode == "verify-full"
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
