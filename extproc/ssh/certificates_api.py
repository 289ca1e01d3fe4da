"""The admin API's SSH certificates: an agent's token traded for a short-lived certificate.

    POST /v1/ssh/certificates  {"public_key": "ssh-ed25519 AAAA..."}
      → {"certificate": "ssh-ed25519-cert-v01@openssh.com AAAA...", "key_id": SUB,
         "principals": ["tollgate:front"], "valid_before": "2026-11-25T13:00:00Z",
         "gateway_host_key": "ssh-ed25519 AAAA...", "ssh_port": 2222 | null,
         "logins": ["web-1", ...]}

The caller is an agent, with its own token (Authorization: Bearer), verified as Envoy
verifies it (approvals/auth.py); the certificate carries that token's claims and lives
`ssh.certificate_minutes`, never past the token (certificates.py). The answer names the
front's host key, so that the client pins it before its first login, and the port agents
reach the front on (Envoy's ssh listener), when tollgate knows it, and the logins of the
config's ssh targets (the user names that reach them), so the client's hint names what
exists. `tollgate ssh login` is the client (extproc/cli/ssh.py).
Errors are JSON: {"error": code, "message": ...}: 401 no token that verifies, 400 a body
or a key that cannot be certified, 404 when this gateway has no user CA.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from extproc.approvals.auth import AuthError, Verifier
from extproc.codecs.message import parse_json
from extproc.config import Config, Identity
from extproc.identity import NO_SUBJECT, identity_of

if TYPE_CHECKING:  # imported with a CA: the CA's module (asyncssh) costs ~0.2 s to import
    from extproc.ssh.certificates import UserCA

log = logging.getLogger("tollgate.ssh")

PATH = "/v1/ssh/certificates"


class _Refused(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class CertificatesApi:
    def __init__(self, verifier: Verifier, identity: Identity, ca: UserCA | None,
                 host_key: str | None, minutes: int, ssh_port: int | None,
                 logins: tuple[str, ...] = ()) -> None:
        self._verifier, self._identity, self._ca = verifier, identity, ca
        self._host_key, self._minutes, self._ssh_port = host_key, minutes, ssh_port
        self._logins = logins

    @classmethod
    def of(cls, config: Config, verifier: Verifier, ssh_port: int | None) -> CertificatesApi:
        """The route as `config` sets it up: with `ssh.user_ca_key_file`'s CA, or none
        (every call answered 404). A key file it cannot use raises KeyFileError."""
        front = config.ssh
        if front is None or front.user_ca_key_file is None:
            return cls(verifier, config.identity, None, None, 0, ssh_port)
        from extproc.ssh.certificates import UserCA, host_key_line

        logins = tuple(t.match.login for t in config.targets if t.match.login is not None)
        return cls(verifier, config.identity,
                   UserCA.from_file(config.resolve(front.user_ca_key_file), config.identity),
                   host_key_line(config.resolve(front.host_key_file)),
                   front.certificate_minutes, ssh_port, logins)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self._issue)]

    async def _issue(self, request: web.Request) -> web.Response:
        try:
            claims = await self._caller(request)
            if self._ca is None:
                raise _Refused("not_found", "this gateway issues no SSH certificates (no "
                               "ssh.user_ca_key_file): log in with the token as password", 404)
            from extproc.ssh.certificates import CertificateError  # imported with the CA

            try:
                issued = self._ca.issue(_public_key(await request.read()), claims,
                                        self._minutes)
            except CertificateError as exc:
                return _json(400, {"error": "bad_key", "message": str(exc)})
        except _Refused as refused:
            return _json(refused.status, {"error": refused.code, "message": str(refused)})
        valid_before = datetime.datetime.fromtimestamp(issued.valid_before, datetime.UTC)
        shown = valid_before.isoformat().replace("+00:00", "Z")
        log.info("SSH certificate %d issued to %s for key %s, valid until %s",
                 issued.serial, issued.key_id, issued.fingerprint, shown)
        return _json(200, {
            "certificate": issued.line, "key_id": issued.key_id,
            "principals": list(issued.principals), "valid_before": shown,
            "gateway_host_key": self._host_key, "ssh_port": self._ssh_port,
            "logins": list(self._logins),
        })

    async def _caller(self, request: web.Request) -> dict[str, Any]:
        """The verified claims of the agent's token."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("the agent's token is needed: Authorization: Bearer <token>")
            claims = await self._verifier.claims(token.strip())
            if not identity_of(claims, self._identity)["authenticated"]:
                raise AuthError(NO_SUBJECT)
        except AuthError as exc:
            log.warning("SSH certificates: %s %s refused: %s", request.method, request.path,
                        exc)
            raise _Refused("unauthenticated", str(exc), 401) from None
        return claims


def _public_key(raw: bytes) -> str:
    """The key to certify, from a JSON body {"public_key": "ssh-ed25519 AAAA..."}."""
    try:
        body = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused("bad_json", f"the body is not JSON: {exc}", 400) from None
    if not isinstance(body, dict) or set(body) != {"public_key"} \
            or not isinstance(body["public_key"], str):
        raise _Refused("bad_request", 'expected a JSON object {"public_key": "ssh-ed25519 '
                       'AAAA..."}', 400)
    return str(body["public_key"])


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
