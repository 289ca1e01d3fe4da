"""Who acts: `input.identity`, from the claims Envoy's jwt_authn verified.

Envoy verifies the token (signature, issuer, audience, expiry) before tollgate
is asked and hands over the payload as metadata; tollgate never parses a token
nor reads identity from a header. Here the claims become the contract's
identity object, with claim names configurable (groups may be `roles` etc.).

An identity is its subject: approvals, grants and the record's quotas are bound
to `sub`. A verified token that names none identifies nobody, so it is refused
(`refusal`) rather than let act as a nameless someone.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from extproc.config import Identity


class Anonymous(TypedDict):
    authenticated: Literal[False]


class Authenticated(TypedDict):
    authenticated: Literal[True]
    sub: str
    iss: str | None
    aud: list[str]
    email: str | None
    groups: list[str]
    jti: str | None


Who = Anonymous | Authenticated
"""`input.identity`: exactly `{"authenticated": false}` without a verified subject."""

ANONYMOUS: Anonymous = {"authenticated": False}

def principals(caller: Authenticated) -> frozenset[str]:
    """How config lists may name this caller (monitor viewers, recordings readers):
    `user:SUB` and `group:NAME` for each of its groups."""
    return frozenset([f"user:{caller['sub']}", *(f"group:{g}" for g in caller["groups"])])


NO_SUBJECT = ("the verified token names no subject (no `sub` claim, or an empty one): "
              "it identifies nobody")


def identity_of(claims: dict[str, Any] | None, settings: Identity) -> Who:
    """The policy's `input.identity` for verified claims (None: no token was sent). Claims
    without a subject are no identity: anonymous, and `refusal` refuses them."""
    sub = _string((claims or {}).get("sub"))
    if claims is None or not sub:
        return ANONYMOUS
    return {
        "authenticated": True,
        "sub": sub,
        "iss": _string(claims.get("iss")),
        "aud": _strings(claims.get("aud")),
        "email": _string(claims.get(settings.email_claim)),
        "groups": _strings(claims.get(settings.groups_claim)),
        "jti": _string(claims.get("jti")),
    }


def refusal(claims: dict[str, Any] | None, identity: Who, target: str,
            anonymous: bool) -> str | None:
    """Why this request may not act on `target` (None: it may). A token sent is judged
    even where anonymous access is allowed, as jwt_authn judges a bad one: one naming
    nobody is refused everywhere; no token only where the target is not `anonymous`."""
    if identity["authenticated"]:
        return None
    if claims is not None:
        return NO_SUBJECT
    if not anonymous:
        return f"target {target} needs a verified token (Authorization: Bearer ...)"
    return None


def subject_of(identity: Who | None) -> str:
    """Who acts, as bounds and bindings count them (approvals, the record's queue): the
    token's subject; every anonymous request is one, "anonymous"."""
    return str((identity.get("sub") if identity is not None else None) or "anonymous")


def span_attributes(identity: Who) -> dict[str, Any]:
    """What the exchange's span shows of the identity (OpenTelemetry's enduser.id)."""
    if not identity["authenticated"]:
        return {"tollgate.identity.authenticated": False}
    return {
        "tollgate.identity.authenticated": True,
        "enduser.id": identity["sub"],
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
