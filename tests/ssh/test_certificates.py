"""Short-lived SSH user certificates (extproc/ssh/certificates.py): real keys signed by a
real user CA, read back, refused when they are not the CA's, not valid now or not
tollgate's; OpenSSH's own ssh-keygen reads them, OpenSSH's ssh logs in with them under any
target's login to a server trusting the CA as the front does, and a real sshd whose
account trusts the same CA lets none of them in."""

from __future__ import annotations

import base64
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_identity,
)

from extproc.config import Identity
from extproc.identity import identity_of
from extproc.ssh.certificates import (
    CLAIMS_EXTENSION,
    PRINCIPAL,
    CertificateError,
    KeyFileError,
    UserCA,
    host_key_line,
)
from tests.support.ssh_certificates import certificate_front, openssh, public_line, write_key
from tests.support.sshd import Sshd

# Where a test fixes the CA's clock; certificates a real server judges are issued and
# built on the real clock (the module may be imported long before its tests run).
NOW = int(time.time())
CLAIMS = {"iss": "https://issuer.test", "aud": "tollgate", "sub": "svc-autogen",
          "groups": ["agents", "deployers"], "email": "autogen@example.com",
          "jti": "svc-autogen-1", "iat": NOW, "nbf": NOW, "exp": NOW + 86400,
          "scope": "openid profile"}
# What the certificate keeps: the claims identity_of reads, and the expiry.
KEPT = {name: CLAIMS[name] for name in ("iss", "sub", "aud", "exp", "jti", "email", "groups")}


@pytest.fixture
def ca_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def ca(ca_key: ed25519.Ed25519PrivateKey) -> UserCA:
    return UserCA(ca_key, Identity())


@pytest.fixture
def agent_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def certificate(line: str) -> SSHCertificate:
    found = load_ssh_public_identity(line.encode())
    assert isinstance(found, SSHCertificate)
    return found


def signed(ca_key: Any, agent_key: Any, principals: list[bytes] | None = None,
           cert_type: SSHCertificateType = SSHCertificateType.USER,
           extensions: dict[bytes, bytes] | None = None,
           critical: dict[bytes, bytes] | None = None) -> str:
    """A certificate of `agent_key` by `ca_key` built by hand: what tollgate never issues."""
    now = int(time.time())
    builder = (SSHCertificateBuilder().public_key(agent_key.public_key())
               .type(cert_type).key_id(b"svc-autogen")
               .valid_after(now - 60).valid_before(now + 600))
    builder = (builder.valid_for_all_principals() if principals is None
               else builder.valid_principals(principals))
    for name, value in (extensions if extensions is not None
                        else {CLAIMS_EXTENSION.encode(): b'{"sub":"svc-autogen"}'}).items():
        builder = builder.add_extension(name, value)
    for name, value in (critical or {}).items():
        builder = builder.add_critical_option(name, value)
    return builder.sign(ca_key).public_bytes().decode()


# -- issuing and reading back ---------------------------------------------------------------


def test_the_certificate_carries_the_verified_claims_back(
        ca: UserCA, agent_key: ed25519.Ed25519PrivateKey) -> None:
    """What identity_of reads comes back as it went in (so the front sees the same
    identity a token would give); claims it does not read stay behind."""
    issued = ca.issue(public_line(agent_key), CLAIMS, 60)
    carried = ca.claims_of(issued.line)
    assert carried == KEPT
    assert identity_of(carried, Identity()) == identity_of(CLAIMS, Identity())


def test_configured_claim_names_are_carried() -> None:
    """Groups in `roles`, e-mail in `mail` (identity.groups_claim, email_claim): those."""
    ca = UserCA(ed25519.Ed25519PrivateKey.generate(),
                Identity(groups_claim="roles", email_claim="mail"))
    claims = {**CLAIMS, "roles": ["dba"], "mail": "a@example.com"}
    line = ca.issue(public_line(ed25519.Ed25519PrivateKey.generate()), claims, 60).line
    carried = ca.claims_of(line)
    assert (carried["roles"], carried["mail"]) == (["dba"], "a@example.com")
    assert "groups" not in carried and "email" not in carried


def test_the_certificate_names_the_subject_tollgates_principal_and_a_terminal_only(
        agent_key: ed25519.Ed25519PrivateKey, ca_key: ed25519.Ed25519PrivateKey) -> None:
    """Key id: the subject; one principal, tollgate's; valid from a minute ago for the
    minutes asked; permit-pty and the claims, no forwarding, no critical option; a user
    certificate of the agent's key, signed by the CA."""
    ca = UserCA(ca_key, Identity(), clock=lambda: NOW)
    issued = ca.issue(public_line(agent_key), CLAIMS, 30)
    found = certificate(issued.line)
    assert (found.key_id, found.valid_principals) == (b"svc-autogen", [PRINCIPAL.encode()])
    assert (issued.key_id, issued.principals) == ("svc-autogen", (PRINCIPAL,))
    assert (found.valid_after, found.valid_before) == (NOW - 60, NOW + 30 * 60)
    assert issued.valid_before == NOW + 30 * 60
    assert set(found.extensions) == {b"permit-pty", CLAIMS_EXTENSION.encode()}
    assert found.critical_options == {}
    assert found.type is SSHCertificateType.USER
    assert found.public_key() == agent_key.public_key()
    assert public_line(ca_key) == ca.public_key_line
    assert found.serial == issued.serial
    assert issued.fingerprint.startswith("SHA256:") and "=" not in issued.fingerprint


def test_a_certificate_never_outlives_its_token(
        agent_key: ed25519.Ed25519PrivateKey, ca_key: ed25519.Ed25519PrivateKey) -> None:
    ca = UserCA(ca_key, Identity(), clock=lambda: NOW)
    issued = ca.issue(public_line(agent_key), {**CLAIMS, "exp": NOW + 300}, 60)
    assert issued.valid_before == NOW + 300 == certificate(issued.line).valid_before


def test_its_wire_form_reads_as_its_line(
        ca: UserCA, agent_key: ed25519.Ed25519PrivateKey) -> None:
    """What a client sends to log in (the certificate's bytes) reads as the file's line."""
    line = ca.issue(public_line(agent_key), CLAIMS, 60).line
    assert ca.claims_of(base64.b64decode(line.split()[1])) == ca.claims_of(line)


@pytest.mark.parametrize("key", [
    rsa.generate_private_key(public_exponent=65537, key_size=2048),
    serialization.load_ssh_private_key(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()), None),
], ids=["rsa", "ed25519"])
def test_rsa_and_ed25519_keys_are_certified(ca: UserCA, key: Any) -> None:
    assert ca.claims_of(ca.issue(public_line(key), CLAIMS, 60).line)["sub"] == "svc-autogen"


# -- what is refused ------------------------------------------------------------------------


def test_an_expired_or_not_yet_valid_certificate_is_refused(
        agent_key: ed25519.Ed25519PrivateKey, ca_key: ed25519.Ed25519PrivateKey) -> None:
    line = UserCA(ca_key, Identity(), clock=lambda: NOW).issue(
        public_line(agent_key), CLAIMS, 10).line
    later = UserCA(ca_key, Identity(), clock=lambda: NOW + 10 * 60)
    with pytest.raises(CertificateError, match=r"^expired$"):
        later.claims_of(line)
    earlier = UserCA(ca_key, Identity(), clock=lambda: NOW - 61)
    with pytest.raises(CertificateError, match=r"^not valid yet$"):
        earlier.claims_of(line)


def test_another_cas_certificate_is_refused(
        ca: UserCA, agent_key: ed25519.Ed25519PrivateKey) -> None:
    other = UserCA(ed25519.Ed25519PrivateKey.generate(), Identity())
    line = other.issue(public_line(agent_key), CLAIMS, 60).line
    with pytest.raises(CertificateError, match="not signed by this gateway's user CA"):
        ca.claims_of(line)


def test_a_tampered_certificate_is_refused(
        ca: UserCA, agent_key: ed25519.Ed25519PrivateKey) -> None:
    """The claims changed after signing (another subject, same length): the signature no
    longer verifies."""
    line = ca.issue(public_line(agent_key), CLAIMS, 60).line
    kind, body = line.split()
    forged = base64.b64decode(body).replace(b'"sub":"svc-autogen"', b'"sub":"svc-admin00"')
    assert forged != base64.b64decode(body)
    with pytest.raises(CertificateError, match="its signature does not verify"):
        ca.claims_of(f"{kind} {base64.b64encode(forged).decode()}")


@pytest.mark.parametrize(("principals", "cert_type", "extensions", "critical", "why"), [
    ([PRINCIPAL.encode()], SSHCertificateType.USER, {}, None, "carries no claims"),
    ([PRINCIPAL.encode()], SSHCertificateType.USER,
     {CLAIMS_EXTENSION.encode(): b"{not json"}, None, "is not JSON"),
    ([PRINCIPAL.encode()], SSHCertificateType.USER,
     {CLAIMS_EXTENSION.encode(): b'{"sub":""}'}, None, "names no subject"),
    ([b"web-1"], SSHCertificateType.USER, None, None, "does not name the principal"),
    (None, SSHCertificateType.USER, None, None, "does not name the principal"),
    ([PRINCIPAL.encode()], SSHCertificateType.HOST, None, None, "not a user certificate"),
    ([PRINCIPAL.encode()], SSHCertificateType.USER, None, {b"force-command": b"id"},
     "critical options"),
], ids=["no-claims", "claims-not-json", "no-subject", "a-login-principal", "no-principals",
        "host-certificate", "critical-option"])
def test_a_certificate_of_the_ca_that_tollgate_never_issues_is_refused(
        ca: UserCA, ca_key: ed25519.Ed25519PrivateKey,
        agent_key: ed25519.Ed25519PrivateKey, principals: list[bytes] | None,
        cert_type: SSHCertificateType, extensions: dict[bytes, bytes] | None,
        critical: dict[bytes, bytes] | None, why: str) -> None:
    line = signed(ca_key, agent_key, principals, cert_type, extensions, critical)
    with pytest.raises(CertificateError, match=why):
        ca.claims_of(line)


@pytest.mark.parametrize(("given", "why"), [
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ", "^not an OpenSSH certificate$"),
    (b"\x00\x00", "^not an OpenSSH certificate$"),
    ("", "^not an OpenSSH certificate$"),
])
def test_what_is_no_certificate_is_refused(ca: UserCA, given: str | bytes, why: str) -> None:
    with pytest.raises(CertificateError, match=why):
        ca.claims_of(given)


def test_a_public_key_is_no_certificate(
        ca: UserCA, agent_key: ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(CertificateError, match=r"^a public key, not a certificate$"):
        ca.claims_of(public_line(agent_key))


def dsa_line() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return public_line(dsa.generate_private_key(key_size=1024))


@pytest.mark.parametrize(("given", "why"), [
    ("garbage", r"^not an OpenSSH public key line"),
    ("", r"^not an OpenSSH public key line"),
    ("ssh-ed25519 @@@", r"^not an OpenSSH public key line"),
    ("not a key", r"^keys of type 'not' are not certified \(Ed25519, ECDSA and RSA are\)$"),
    (public_line(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
     r"^an RSA key of 1024 bits is too weak \(at least 2048\)$"),
    (dsa_line(), r"^keys of type 'ssh-dss' are not certified"),
], ids=["one-word", "empty", "bad-base64", "unknown-type", "rsa-1024", "dsa"])
def test_a_key_tollgate_does_not_certify_is_refused(ca: UserCA, given: str, why: str) -> None:
    with pytest.raises(CertificateError, match=why):
        ca.issue(given, CLAIMS, 60)


def test_a_certificate_is_not_certified_again(
        ca: UserCA, agent_key: ed25519.Ed25519PrivateKey) -> None:
    line = ca.issue(public_line(agent_key), CLAIMS, 60).line
    with pytest.raises(CertificateError, match=r"^a certificate, not a public key$"):
        ca.issue(line, CLAIMS, 60)


@pytest.mark.parametrize(("claims", "why"), [
    ({**CLAIMS, "exp": NOW - 1}, "^the token has expired$"),
    ({**CLAIMS, "exp": NOW}, "^the token has expired$"),
    ({**CLAIMS, "exp": None}, r"^the token has no expiry \(exp\)$"),
    ({**CLAIMS, "sub": ""}, "names no subject"),
    ({**CLAIMS, "groups": [f"group-{n:04d}-{'x' * 40}" for n in range(400)]},
     "OpenSSH reads at most 16383"),
], ids=["expired", "expiring-now", "no-exp", "no-subject", "too-many-claims"])
def test_claims_a_certificate_cannot_carry_are_refused(
        agent_key: ed25519.Ed25519PrivateKey, ca_key: ed25519.Ed25519PrivateKey,
        claims: dict[str, Any], why: str) -> None:
    ca = UserCA(ca_key, Identity(), clock=lambda: NOW)
    with pytest.raises(CertificateError, match=why):
        ca.issue(public_line(agent_key), claims, 60)


# -- key files ------------------------------------------------------------------------------


def test_key_files_in_openssh_and_pem_format_are_read(tmp_path: Path) -> None:
    openssh_line = write_key(tmp_path / "ca")
    assert UserCA.from_file(tmp_path / "ca", Identity()).public_key_line == openssh_line
    assert host_key_line(tmp_path / "ca") == openssh_line
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    assert UserCA.from_file(tmp_path / "pem", Identity()).public_key_line == public_line(key)


def test_key_files_tollgate_cannot_use_are_named_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=rf"^{tmp_path}/missing: cannot read it"):
        UserCA.from_file(tmp_path / "missing", Identity())
    (tmp_path / "locked").write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(KeyFileError, match="the key is encrypted; tollgate needs it "
                                           "unencrypted"):
        UserCA.from_file(tmp_path / "locked", Identity())
    (tmp_path / "junk").write_text("-----BEGIN NOTHING-----\n")
    with pytest.raises(KeyFileError, match="not an Ed25519, ECDSA or RSA private key"):
        host_key_line(tmp_path / "junk")


# -- with OpenSSH ---------------------------------------------------------------------------


@pytest.mark.e2e  # ssh-keygen
def test_ssh_keygen_reads_the_certificate(ca: UserCA, tmp_path: Path) -> None:
    write_key(tmp_path / "id_ed25519")
    line = ca.issue(public_of(tmp_path / "id_ed25519"), CLAIMS, 60).line
    (tmp_path / "id_ed25519-cert.pub").write_text(line + "\n")
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(tmp_path / "id_ed25519-cert.pub")],
                           capture_output=True, text=True, check=True, timeout=10).stdout
    assert "ssh-ed25519-cert-v01@openssh.com user certificate" in shown
    assert 'Key ID: "svc-autogen"' in shown
    principals = shown.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == [PRINCIPAL]
    assert "Critical Options: (none)" in shown
    extensions = shown.split("Extensions:")[1]
    assert "permit-pty" in extensions and CLAIMS_EXTENSION in extensions
    assert "forwarding" not in extensions


def public_of(key: Path) -> str:
    return key.with_name(f"{key.name}.pub").read_text()


def login_files(tmp_path: Path, name: str, host_key_line: str, port: int
                ) -> tuple[Path, Path]:
    """A new key, and known_hosts naming the server's host key."""
    key = tmp_path / name / "id_ed25519"
    write_key(key)
    known_hosts = tmp_path / name / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
    return key, known_hosts


@pytest.mark.e2e  # OpenSSH's ssh
async def test_openssh_logs_in_with_the_certificate_under_any_targets_login(
        ca: UserCA, tmp_path: Path) -> None:
    """One certificate, two targets' logins: the server trusting the CA as the front does
    lets both in, reads the subject from the certificate, and grants a terminal."""
    async with certificate_front(ca, tmp_path) as front:
        key, known_hosts = login_files(tmp_path, "agent", front.host_key_line, front.port)
        key.with_name("id_ed25519-cert.pub").write_text(
            ca.issue(public_of(key), CLAIMS, 60).line + "\n")
        for login in ("web-1", "db-2"):
            status, out, err = await openssh(key, known_hosts, front.port,
                                             f"{login}@127.0.0.1", "id")
            assert (status, out) == (0, f"login={login} sub=svc-autogen pty=None\n"), err
        status, out, err = await openssh(key, known_hosts, front.port, "web-1@127.0.0.1",
                                         "id", options=("-tt",), term="xterm")
        assert (status, out) == (0, "login=web-1 sub=svc-autogen pty=xterm\r\n"), err


@pytest.mark.e2e  # OpenSSH's ssh
async def test_the_front_lets_in_no_other_certificate_and_no_key_alone(
        ca: UserCA, ca_key: ed25519.Ed25519PrivateKey, tmp_path: Path) -> None:
    """Another CA's certificate, this CA's expired one, one of this CA naming the login
    instead of tollgate's principal, and a key with no certificate are all refused."""
    other = UserCA(ed25519.Ed25519PrivateKey.generate(), Identity())
    expired = UserCA(ca_key, Identity(), clock=lambda: NOW - 7200)

    def naming_the_login(key: Path) -> str:
        return signed(ca_key, serialization.load_ssh_private_key(key.read_bytes(), None),
                      [b"web-1"])

    issuers: dict[str, Callable[[Path], str] | None] = {
        "other-ca": lambda key: other.issue(public_of(key), CLAIMS, 60).line,
        "expired": lambda key: expired.issue(public_of(key), CLAIMS, 60).line,
        "login-principal": naming_the_login,
        "no-certificate": None,
    }
    async with certificate_front(ca, tmp_path) as front:
        for name, issue in issuers.items():
            key, known_hosts = login_files(tmp_path, name, front.host_key_line, front.port)
            if issue is not None:
                key.with_name("id_ed25519-cert.pub").write_text(issue(key) + "\n")
            status, out, err = await openssh(key, known_hosts, front.port,
                                             "web-1@127.0.0.1", "id")
            assert (status, out) == (255, ""), name
            assert "Permission denied (publickey)" in err, name


@pytest.mark.e2e  # a real sshd
async def test_an_openssh_server_whose_account_trusts_the_ca_lets_no_certificate_in(
        sshd: Sshd, ca: UserCA, ca_key: ed25519.Ed25519PrivateKey, tmp_path: Path) -> None:
    """Were the user CA trusted by a host's account (an authorized_keys cert-authority
    line), a tollgate certificate would open nothing: it names no account. A certificate
    of the same CA without principals would have opened it."""
    authorized_keys = sshd.home.parent / "authorized_keys"  # tests/support/sshd.py's
    with authorized_keys.open("a") as lines:
        lines.write(f"cert-authority {ca.public_key_line}\n")
    key, known_hosts = login_files(tmp_path, "agent", sshd.host_key_line, sshd.port)
    certificate = key.with_name("id_ed25519-cert.pub")
    certificate.write_text(ca.issue(public_of(key), CLAIMS, 60).line + "\n")
    status, out, err = await openssh(key, known_hosts, sshd.port, f"{sshd.user}@127.0.0.1",
                                     "echo in")
    assert (status, out) == (255, ""), err
    assert "Certificate invalid: name is not a listed principal" in sshd.log()
    assert f"Accepted publickey for {sshd.user}" not in sshd.log()
    agent = serialization.load_ssh_private_key(key.read_bytes(), None)
    certificate.write_text(signed(ca_key, agent, principals=None) + "\n")
    status, out, err = await openssh(key, known_hosts, sshd.port, f"{sshd.user}@127.0.0.1",
                                     "echo in")
    assert (status, out) == (0, "in\n"), err
