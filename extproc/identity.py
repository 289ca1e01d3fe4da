"""Who acts: `input.identity`, from the claims Envoy's jwt_authn verified.

Envoy verifies the token (signature, issuer, audience, expiry) before tollgate
is asked and hands over the payload as metadata; tollgate never parses a token
nor reads identity from a header. Here the claims become the contract's
identity object, with claim names configurable (groups may be `roles` etc.).
"""

from __future__ import annotations

from typing import Any

from extproc.config import Identity

ANONYMOUS: dict[str, Any] = {"authenticated": False}


def identity_of(claims: dict[str, Any] | None, settings: Identity) -> dict[str, Any]:
    """The policy's `input.identity` for verified claims (None: no token was sent)."""
    if claims is None:
        return ANONYMOUS
    return {
        "authenticated": True,
        "sub": _string(claims.get("sub")),
        "iss": _string(claims.get("iss")),
        "aud": _strings(claims.get("aud")),
        "email": _string(claims.get(settings.email_claim)),
        "groups": _strings(claims.get(settings.groups_claim)),
        "jti": _string(claims.get("jti")),
    }


def span_attributes(identity: dict[str, Any]) -> dict[str, Any]:
    """What the exchange's span shows of the identity (OpenTelemetry's enduser.id)."""
    if not identity["authenticated"]:
        return {"tollgate.identity.authenticated": False}
    return {
        "tollgate.identity.authenticated": True,
        "enduser.id": identity["sub"] or "",
        "tollgate.identity.issuer": identity["iss"] or "",
        "tollgate.identity.groups": tuple(identity["groups"]),
    }


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str]:
    """A claim that may be one string or a list of them (aud, groups, roles)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
