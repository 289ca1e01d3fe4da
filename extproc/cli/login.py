"""`tollgate login` and `tollgate logout`: the CLI signed in with the identity provider the
admin pages sign in with (`admin.oidc`), by a loopback redirect (RFC 8252): a one-shot
server on 127.0.0.1 takes the provider's answer, the code is redeemed with its PKCE
verifier, and the ID token is kept (saved_login.py) for the admin API's calls, which
verify it as they verify any token (admin/caller.py)."""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from extproc.cli import saved_login
from extproc.cli.admin_client import admin_url
from extproc.cli.common import QUICKSTART_CONFIG
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal

_TIMEOUT = 10.0
# How long the browser has to come back with the provider's answer.
_WAIT_SECONDS = 300.0


class LoginFailed(Exception):
    """The sign-in did not end with a token (exit 1; the message says why)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text in (
            ("login", "sign in with the admin's identity provider (a browser opens); the "
                      "approvals and ssh commands then use it"),
            ("logout", "forget the sign-in `tollgate login` kept")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--url", help="the admin API, e.g. http://127.0.0.1:8081 "
                                           "(default: from --config)")
        command.add_argument("--config", type=Path, default=QUICKSTART_CONFIG,
                             help="the tollgate config whose admin API to use (default: the "
                                  "quickstart's)")
        if name == "login":
            command.add_argument("--no-browser", action="store_true",
                                 help="print the address to open instead of opening it")


def main(args: argparse.Namespace) -> int:
    try:
        url = admin_url(args.url, args.config).rstrip("/")
        if args.command == "logout":
            said = "signed out" if saved_login.forget(url) else "no sign-in was kept"
            print(f"tollgate logout: {said} for {url}")
            return 0
        who, where = login(url, open_browser=not args.no_browser)
    except Unusable as exc:
        print(f"tollgate {args.command}: {terminal(str(exc))}", file=sys.stderr)
        return 2
    except LoginFailed as exc:
        print(f"tollgate login: {terminal(str(exc))}", file=sys.stderr)
        return 1
    print(f"tollgate login: signed in as {terminal(who)}; kept in {where} (mode 0600)")
    return 0


def login(url: str, open_browser: bool) -> tuple[str, Path]:
    """Sign in for the admin API at `url`: who signed in, and where the token is kept."""
    about = _json(f"{url}/auth/oidc", "the admin API's sign-in settings",
                  f"the admin API at {url} signs in with no identity provider (its "
                  "admin.oidc is unset): give a token instead (--token)")
    issuer = str(about["issuer"])
    provider = _json(issuer.rstrip("/") + "/.well-known/openid-configuration",
                     "the identity provider's discovery document")
    catcher = _Catcher()
    redirect_uri = f"http://127.0.0.1:{catcher.port}/callback"
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    address = prepare_grant_uri(
        provider["authorization_endpoint"], about["client_id"], "code", redirect_uri,
        " ".join(about["scopes"]), state, nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256")
    print(f"Sign in at this address (it comes back to {redirect_uri}):\n  {address}",
          flush=True)
    if open_browser:
        webbrowser.open(address)
    answer = catcher.wait(_WAIT_SECONDS)
    if "error" in answer:
        why = answer.get("error_description") or answer["error"]
        raise LoginFailed(f"the provider refused: {why}")
    if not secrets.compare_digest(answer.get("state", ""), state) or "code" not in answer:
        raise LoginFailed("the answer at the loopback is not this sign-in's (its state "
                          "differs)")
    tokens = _post(provider["token_endpoint"], {
        "grant_type": "authorization_code", "code": answer["code"],
        "redirect_uri": redirect_uri, "code_verifier": verifier,
        "client_id": about["client_id"]})
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise LoginFailed("the provider's answer holds no ID token")
    # The signature is the admin API's to check, on every call; the nonce is this sign-in's.
    claims = _claims(id_token)
    if claims.get("nonce") != nonce:
        raise LoginFailed("the ID token is not this sign-in's (its nonce differs)")
    return str(claims.get("sub")), saved_login.save(url, id_token, float(claims["exp"]),
                                                    str(claims.get("sub")))


class _Catcher:
    """The loopback: one GET of /callback, its query kept, a page saying to go back."""

    def __init__(self) -> None:
        self._answer: dict[str, str] = {}
        self._arrived = threading.Event()
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                catcher._answer = dict(urllib.parse.parse_qsl(parts.query))
                catcher._arrived.set()
                body = b"Signed in to tollgate: you may close this tab.\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the terminal shows the sign-in's own lines only."""

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        # Its shutdown waits a poll interval (0.5 s by default) before the command ends.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def wait(self, seconds: float) -> dict[str, str]:
        try:
            if not self._arrived.wait(seconds):
                raise LoginFailed(f"no answer came back within {seconds:.0f} s: run "
                                  "`tollgate login` again")
            return self._answer
        finally:
            self._server.shutdown()
            self._server.server_close()


def _claims(id_token: str) -> dict[str, Any]:
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise LoginFailed("the provider's ID token is not a JWT") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
        raise LoginFailed("the provider's ID token names no expiry")
    return claims


def _json(url: str, what: str, missing: str | None = None) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as reply:
            found = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and missing:
            raise LoginFailed(missing) from None
        raise LoginFailed(f"{what} cannot be read from {url} ({exc.code} {exc.reason})") \
            from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoginFailed(f"{what} cannot be read from {url} "
                          f"({getattr(exc, 'reason', exc)})") from None
    if not isinstance(found, dict):
        raise LoginFailed(f"{what} at {url} is not a JSON object")
    return found


def _post(url: str, form: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(),
                                     headers={"accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as reply:
            found = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        try:
            said = json.loads(exc.read())
            why = said.get("error_description") or said.get("error")
        except ValueError:
            why = exc.reason
        raise LoginFailed(f"the provider refused the sign-in's code ({exc.code}: {why})") \
            from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoginFailed(f"the provider's token endpoint cannot be reached "
                          f"({getattr(exc, 'reason', exc)})") from None
    return found if isinstance(found, dict) else {}
