"""`tollgate ssh login`: your token traded for a short-lived SSH certificate, like `tsh login`.

The admin API (POST /v1/ssh/certificates) has the gateway's user CA certify your key:
`--key` (~/.tollgate/ssh-login/id_ed25519 by default, made if missing: a folder of its
own, apart from ~/.tollgate/ssh/, where the quickstart keeps the gateway's keys and its
user CA). The certificate is written beside it as KEY-cert.pub, where ssh finds it for
`-i KEY`, and the gateway's host key as KEY-known_hosts, so the first login already
checks whom it talks to; then `ssh`, `scp` and `sftp` (batch mode too, which cannot type
a password) log in to TARGET@gateway with no token typed, until the certificate expires
(minutes, never past the token). The token comes from `--token` or
$TOLLGATE_TOKEN, the API's address from `--url` or the config.

Exit status: 0 success; 1 the API refused (the token, the key, no user CA) or cannot be
reached; 2 unusable input (no token, the config, the key file), one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from extproc.cli.admin_client import AdminApi, Refused, add_flags, admin_url, failed, token_of
from extproc.codecs import private_file
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal

# The admin API's route (extproc/ssh/certificates_api.py).
_API_PATH = "/v1/ssh/certificates"
DEFAULT_KEY = Path("~/.tollgate/ssh-login/id_ed25519")
# Where the default key was before it had a folder of its own (the quickstart's).
_EARLIER_KEY = Path("~/.tollgate/ssh/id_ed25519")
_SSH_PORT = 22


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `ssh login` under `tollgate`."""
    ssh = commands.add_parser("ssh", help="log in to ssh targets with a short-lived "
                                          "certificate")
    actions = ssh.add_subparsers(dest="ssh_command", required=True, metavar="{login}")
    login = actions.add_parser(
        "login", help="trade your token for an SSH certificate and print the ssh command")
    add_flags(login)
    login.add_argument("--key", type=Path, default=DEFAULT_KEY, metavar="PATH",
                       help=f"your private key, made (Ed25519) if missing (default: "
                            f"{DEFAULT_KEY})")
    login.add_argument("--host", help="the gateway's SSH host (default: the admin API's)")
    login.add_argument("--port", type=int, help="the gateway's SSH port (default: the one "
                                                "the API names, else 22)")


def main(args: argparse.Namespace) -> int:
    try:
        url = admin_url(args.url, args.config)
        api = AdminApi(url, token_of(args.token, url))
        host, port = _gateway(args, api.url)
        key = args.key.expanduser()
        public = _public_key(key)
        answer = api.call("POST", _API_PATH, {"public_key": public})
        certificate, host_key = _checked(answer, public)
        port = port or answer.get("ssh_port") or _SSH_PORT
        written = key.with_name(f"{key.name}-cert.pub")
        known_hosts = key.with_name(f"{key.name}-known_hosts")
        _write(written, certificate.public_bytes().decode())
        _write(known_hosts, f"{_host_pattern(host, port)} {host_key}")
    except (Unusable, Refused) as exc:
        return failed("tollgate ssh login", exc)
    command = ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={known_hosts}",
               "-o", "IdentitiesOnly=yes", *(["-p", str(port)] if port != _SSH_PORT else [])]
    until = datetime.datetime.fromtimestamp(certificate.valid_before, datetime.UTC)
    print(terminal(f"certificate for {certificate.key_id.decode(errors='replace')} until "
                   f"{until:%Y-%m-%d %H:%M:%S} UTC: {written}"))
    logins = _logins(answer)
    if len(logins) == 1:
        print(f"log in to {logins[0]}, this gateway's SSH target, with:")
    elif logins:
        print(f"log in to a target, TARGET one of its logins ({', '.join(logins)}), with:")
    else:
        print("log in to a target (TARGET: its login; this gateway names none) with:")
    print(f"  {shlex.join(command)} {shlex.quote(logins[0] if len(logins) == 1 else 'TARGET')}"
          f"@{shlex.quote(host)}")
    return 0


def _logins(answer: dict[str, Any]) -> list[str]:
    """The logins of the gateway's SSH targets, as its answer names them, shown safely."""
    named = answer.get("logins")
    if not isinstance(named, list):
        return []
    return [terminal(login) for login in named if isinstance(login, str) and login]


def _public_key(key: Path) -> str:
    """KEY.pub's line; a key made first when there is none."""
    public = key.with_name(f"{key.name}.pub")
    if not key.exists():
        _make_key(key, public)
    try:
        return public.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise Unusable(f"{public}: missing (ssh-keygen -y -f {key} > {public} writes "
                       "it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Unusable(f"{public}: cannot read it ({exc})") from None


def _make_key(key: Path, public: Path) -> None:
    """A new Ed25519 key: KEY readable by you alone, as ssh requires, and KEY.pub."""
    made = ed25519.Ed25519PrivateKey.generate()
    private = made.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption())
    line = made.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                          serialization.PublicFormat.OpenSSH)
    try:
        private_file.write(key, private, exclusive=True)
        public.write_bytes(line + b" tollgate ssh login\n")
    except OSError as exc:
        raise Unusable(f"{key}: cannot make a key there ({exc.strerror})") from None
    print(f"made a new key: {key}", file=sys.stderr)
    earlier = _EARLIER_KEY.expanduser()
    if key == DEFAULT_KEY.expanduser() and earlier.exists():
        print(f"{earlier} (and its .pub, -cert.pub, -known_hosts) is no longer used: "
              "the quickstart's folder keeps the gateway's keys only; remove them",
              file=sys.stderr)


def _gateway(args: argparse.Namespace, url: str) -> tuple[str, int | None]:
    """Where ssh reaches the gateway: `--host` (else the admin API's host) and `--port`
    (None: the one the API names)."""
    host = args.host or urlsplit(url).hostname or ""
    if not host or any(c.isspace() for c in host):
        raise Unusable(f"--host: expected a host name or address, got {host!r}")
    if args.port is not None and not 0 < args.port < 65536:
        raise Unusable(f"--port: expected 1-65535, got {args.port}")
    return host, args.port


def _checked(answer: dict[str, Any], public: str
             ) -> tuple[serialization.SSHCertificate, str]:
    """The certificate (of our own key) and the gateway's host key line, each read as
    OpenSSH reads it, before they are written where ssh trusts them."""
    port = answer.get("ssh_port")
    try:
        certificate = serialization.load_ssh_public_identity(answer["certificate"].encode())
        ours = serialization.load_ssh_public_key(public.encode())
        host_key = serialization.load_ssh_public_key(answer["gateway_host_key"].encode())
    except (KeyError, AttributeError, ValueError) as exc:
        raise Refused(f"the admin API's answer is not a certificate and a host key ({exc})"
                      ) from None
    if not isinstance(certificate, serialization.SSHCertificate) \
            or certificate.public_key() != ours:
        raise Refused("the admin API answered with a certificate of another key")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise Refused(f"the admin API's ssh_port is not a port: {port!r}")
    return certificate, host_key.public_bytes(serialization.Encoding.OpenSSH,
                                              serialization.PublicFormat.OpenSSH).decode()


def _host_pattern(host: str, port: int) -> str:
    """The host as known_hosts names it: `host`, or `[host]:port` off port 22."""
    return host if port == _SSH_PORT else f"[{host}]:{port}"


def _write(path: Path, line: str) -> None:
    """`line` as `path`'s whole content, replaced at once (a reader never sees half)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(line + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise Unusable(f"{path}: cannot write it ({exc.strerror})") from None

