"""The development OpenID provider (dev_oidc.mjs: the npm package oidc-provider, run by
Node) that the quickstart signs its demo users in with, and the tests with it: its users,
its two clients (the admin pages' and the CLI's), and starting it.

Node and the package are optional: `make test` installs the package into build/oidc (never
committed); without either, `missing` says which, and the quickstart keeps token sign-in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extproc.config import Admin, Config, Oidc
from extproc.quickstart import stack

SCRIPT = Path(__file__).with_name("dev_oidc.mjs")
# Where `make` installs oidc-provider (the Makefile's OIDC_PROVIDER), or $TOLLGATE_OIDC_MODULES.
MODULES_ENV = "TOLLGATE_OIDC_MODULES"
_MODULES = Path(__file__).resolve().parents[2] / "build" / "oidc" / "node_modules"
WEB_CLIENT = "tollgate-admin"
CLI_CLIENT = "tollgate-cli"
SCOPES = ("openid", "profile", "email", "groups")
# The quickstart's sessions' key, beside its audit signing key (made on first start).
QUICKSTART_SESSION_KEY = Path("~/.config/tollgate/admin-session.key")
# What `tollgate up` prints: prose only (the tour runs every indented line as a command).
SIGN_IN_LINES = """
Sign in to the admin pages ({admin}/) with the quickstart's development identity
provider at {issuer} (never for production), as one of its demo users:
{users}.
The CLI signs in there too: `{tollgate} login{url}`, after which
`{tollgate} approvals list{url}` needs no token. A token pasted on a page still works
(open the page with ?token).
"""
NO_SIGN_IN_LINES = """
No development identity provider ({why}): on the admin pages, paste the tokens printed
above (the dba's for the approvals, the auditor's for the recordings).
"""


@dataclass(frozen=True)
class DemoUser:
    id: str
    password: str
    name: str
    email: str
    groups: tuple[str, ...]


    # What the quickstart's rules let them do, as `tollgate up` says it.
    role: str = ""
    # Whether the provider vouches for the e-mail (`email_verified`), as real providers
    # say of an address they checked: what linking a Slack user by e-mail trusts.
    email_verified: bool = True


# The quickstart's people (as its printed tokens name them): an approver of the default
# pack's holds, a security engineer (monitor and record), an auditor (the record).
DEMO_USERS = (
    DemoUser("dana", "dana-demo-pass", "Dana (DBA)", "dana@example.test", ("dba",),
             "decides the demo's held writes, watches the monitor"),
    DemoUser("sam", "sam-demo-pass", "Sam (security)", "sam@example.test", ("security",),
             "the monitor and the record"),
    DemoUser("ava", "ava-demo-pass", "Ava (auditor)", "ava@example.test", ("auditors",),
             "reads the record"),
)


def modules() -> Path:
    return Path(os.environ.get(MODULES_ENV) or _MODULES)


def missing() -> str | None:
    """Why the development provider cannot run here (None: it can)."""
    if shutil.which("node") is None:
        return "no Node.js (node) on PATH"
    if not (modules() / "oidc-provider" / "package.json").exists():
        return (f"the npm package oidc-provider is not in {modules()} (`make` installs it: "
                "npm install --prefix build/oidc oidc-provider)")
    return None


def settings(port: int, admin_url: str, users: Iterable[DemoUser] = DEMO_USERS,
             secret: str | None = None, resources: Mapping[str, Iterable[str]] | None = None,
             token_exchange: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What dev_oidc.mjs is started with: a web client redirecting to the admin port's
    callback (public, or confidential with `secret`), a native one for the CLI's loopback,
    `users`, and the protected resources (URL -> its scopes) it issues JWT access tokens
    for: MCP routes' (identity.oauth_resource), whose clients register themselves.
    `token_exchange` (client_id, client_secret, subject_issuer, subject_jwks) turns on
    RFC 8693 for the gateway's exchanged upstream credentials (off by default)."""
    web = ({"token_endpoint_auth_method": "none"} if secret is None else
           {"token_endpoint_auth_method": "client_secret_basic", "client_secret": secret})
    return {
        "modules": str(modules()), "issuer": issuer(port), "port": port,
        "clients": [
            {"client_id": WEB_CLIENT, **web,
             "redirect_uris": [f"{admin_url.rstrip('/')}/auth/callback"],
             "grant_types": ["authorization_code"], "response_types": ["code"]},
            {"client_id": CLI_CLIENT, "token_endpoint_auth_method": "none",
             "application_type": "native", "redirect_uris": ["http://127.0.0.1/callback"],
             "grant_types": ["authorization_code"], "response_types": ["code"]},
        ],
        "users": [{"id": u.id, "password": u.password, "name": u.name, "email": u.email,
                   "email_verified": u.email_verified, "groups": list(u.groups)}
                  for u in users],
        "resources": {url: list(scopes) for url, scopes in (resources or {}).items()},
        **({"token_exchange": dict(token_exchange)} if token_exchange else {}),
    }


def issuer(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def admin_oidc(port: int, session_key_file: Path) -> dict[str, Any]:
    """The `admin.oidc` section that signs in with the provider on `port`."""
    return {"issuer": issuer(port), "client_id": WEB_CLIENT, "cli_client_id": CLI_CLIENT,
            "scopes": list(SCOPES), "session_key_file": str(session_key_file)}


def signing_in(config: Config, port: int) -> Config:
    """`config` signing in to its admin pages with the provider on `port` (the quickstart's)."""
    settings = Oidc(issuer=issuer(port), client_id=WEB_CLIENT, cli_client_id=CLI_CLIENT,
                    scopes=SCOPES, session_key_file=QUICKSTART_SESSION_KEY)
    return dataclasses.replace(config, admin=Admin(oidc=settings))


def said(port: int | None, why: str | None, admin_url: str, tollgate: str,
         url_flag: str = "") -> str:
    """What `tollgate up` prints of the provider on `port` (None: of why there is none);
    `url_flag`: the commands' --url, where the admin port moved."""
    if port is None:
        return NO_SIGN_IN_LINES.format(why=why)
    users = ";\n".join(f"{u.id} (password {u.password}; group {', '.join(u.groups)}): {u.role}"
                       for u in DEMO_USERS)
    return SIGN_IN_LINES.format(admin=admin_url, issuer=issuer(port), users=users,
                                tollgate=tollgate, url=url_flag)


def free_local_port() -> int:
    """A port the kernel finds free on 127.0.0.1 (the quickstart's provider moves with
    every start; the CLI and the pages learn it from the admin port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def discovery_served(port: int) -> Callable[[], bool]:
    """Whether the provider on `port` answers its discovery document."""
    def check() -> bool:
        url = issuer(port) + "/.well-known/openid-configuration"
        with contextlib.suppress(OSError, ValueError), \
                urllib.request.urlopen(url, timeout=0.5) as reply:
            return json.loads(reply.read()).get("issuer") == issuer(port)
        return False

    return check


def start(port: int, admin_url: str, log_dir: Path | None,
          users: Iterable[DemoUser] = DEMO_USERS, timeout: float = 30.0,
          secret: str | None = None, resources: Mapping[str, Iterable[str]] | None = None,
          token_exchange: Mapping[str, Any] | None = None) -> stack.Process:
    """The provider on 127.0.0.1:`port`, once it serves its discovery document."""
    node = shutil.which("node") or "node"
    proc = stack.Process.spawn(
        "dev-oidc", [node, str(SCRIPT), json.dumps(
            settings(port, admin_url, users, secret, resources, token_exchange))], log_dir)
    proc.ready_or_fail(discovery_served(port), timeout, "serving its discovery document",
                       "the development OpenID provider", issuer(port))
    return proc
