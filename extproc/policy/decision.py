"""What a policy answers, checked before anything acts on it.

A policy result that is not exactly the documented shape is never guessed at:
`Decision.parse` raises, and the caller turns that into a deny (fail closed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Action = Literal["allow", "deny", "hold"]
Severity = Literal["info", "warning", "critical"]
_ACTIONS = ("allow", "deny", "hold")
_MASK_KEYS = frozenset({"detectors", "actions", "fields", "strategy", "derived", "model"})
_MASK_LISTS = ("detectors", "actions", "fields", "derived", "model")
_KNOWN_KEYS = frozenset({
    "action", "reasons", "rules", "status", "mask", "approvers", "hold_seconds", "grant",
    "grant_minutes", "alerts", "database_role", "statement_timeout_seconds",
    "approvals_needed", "moderated", "inspect",
})
_SEVERITIES = ("info", "warning", "critical")
_GRANTS = ("once", "window")
# How long a hold waits when the policy does not say, and the most a window grant lasts.
DEFAULT_HOLD_SECONDS = 300
MOST_GRANT_MINUTES = 24 * 60
# The most distinct approvers a hold may need (two-person approval and beyond).
MOST_APPROVALS_NEEDED = 5


@dataclass(frozen=True, slots=True)
class Alert:
    """What the policy says someone should know now (`data.tollgate.alerts`): a rule,
    its severity, and a message for people."""

    rule: str
    severity: Severity
    message: str
    # What else it is about, deduplicated apart ("" for none): a first-seen destination
    # alerts once per destination, not once per identity.
    key: str = ""


_ALERT_KEYS = frozenset({"rule", "severity", "message", "key"})


class MalformedDecision(ValueError):
    """The policy answered, but not with a decision of the documented shape."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    # HTTP status of a deny; 403 unless the policy names another.
    status: int = 403
    # What to mask in what is let through: {"detectors": [...] (or ["all"]), "actions":
    # [...] (the detectors of a model's tool-call arguments), "fields": [...] (JSON keys
    # masked whole, beyond the default ones), "derived": [...] (result columns the SQL
    # computed from protected ones, masked whole), "model": [...] (what the local NER
    # model finds: "person", "address"), "strategy": ("hash",)}.
    mask: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # A hold: who may approve (e.g. "group:dba"), and how long the request waits.
    approvers: tuple[str, ...] = ()
    hold_seconds: int | None = None
    # What an approval grants: `once`, this exact request once; `window`, this identity on
    # this target for `grant_minutes` (every request the policy holds for the same
    # approvers, not those it denies).
    grant: Literal["once", "window"] = "once"
    grant_minutes: int | None = None
    # How many distinct approvers must approve a hold before it passes (two-person
    # approval: 2); one denial denies it.
    approvals_needed: int = 1
    # Raised with this decision, whatever its action (exchange/alerts.py delivers them).
    alerts: tuple[Alert, ...] = ()
    # A database session's login (postgres and mysql targets): the role the session runs
    # as on the server, one of its target's `roles`; None: the policy names none.
    database_role: str | None = None
    # With it: how long one statement of the session may run before the server cancels
    # it (None: the server's own setting).
    statement_timeout_seconds: int | None = None
    # The exchange goes on only while a moderator attends its session (a person of
    # `sessions.moderators` watching or joined, through any replica): it waits until
    # one does (exchange/presence.py). Only with allow or hold.
    moderated: bool = False
    # A CONNECT through the egress proxy whose tunnel tollgate reads (egress.rego's inspect
    # lists): its TLS ended with the egress CA's certificate, each request inside decided.
    inspect: bool = False

    @classmethod
    def parse(cls, value: Any) -> Decision:
        """Validate a policy result (a JSON value) into a Decision."""
        if not isinstance(value, dict):
            raise MalformedDecision(f"decision must be an object, got {_kind(value)}")
        unknown = value.keys() - _KNOWN_KEYS
        if unknown:
            raise MalformedDecision(f"unknown decision keys: {', '.join(sorted(unknown))}")
        action = value.get("action")
        if action not in _ACTIONS:
            raise MalformedDecision(f"action must be one of {', '.join(_ACTIONS)}, got {action!r}")
        status = value.get("status", 403)
        if type(status) is not int or not 400 <= status <= 599:
            raise MalformedDecision(f"status must be an integer 400-599, got {status!r}")
        mask = value.get("mask", {})
        if not isinstance(mask, dict):
            raise MalformedDecision(f"mask must be an object, got {_kind(mask)}")
        unknown = mask.keys() - _MASK_KEYS
        if unknown:
            raise MalformedDecision(f"unknown mask keys: {', '.join(sorted(unknown))}")
        strategy = mask.get("strategy", "redact")
        if not isinstance(strategy, str):
            raise MalformedDecision(f"mask.strategy must be a string, got {strategy!r}")
        hold_seconds = value.get("hold_seconds")
        if hold_seconds is not None and (type(hold_seconds) is not int or hold_seconds < 1):
            raise MalformedDecision(
                f"hold_seconds must be an integer >= 1, got {hold_seconds!r}"
            )
        grant, minutes = value.get("grant", "once"), value.get("grant_minutes")
        if grant not in _GRANTS:
            raise MalformedDecision(f"grant must be one of {', '.join(_GRANTS)}, got {grant!r}")
        if (grant == "window") != (minutes is not None):
            raise MalformedDecision("grant_minutes goes with grant 'window', and only with it")
        if minutes is not None and (type(minutes) is not int
                                    or not 1 <= minutes <= MOST_GRANT_MINUTES):
            raise MalformedDecision(
                f"grant_minutes must be an integer 1-{MOST_GRANT_MINUTES}, got {minutes!r}")
        return cls(
            action=action,
            reasons=_strings(value, "reasons"),
            rules=_strings(value, "rules"),
            status=status,
            mask={
                **{k: _strings(mask, k) for k in _MASK_LISTS if k in mask},
                **({"strategy": (strategy,)} if "strategy" in mask else {}),
            },
            approvers=_strings(value, "approvers"),
            hold_seconds=hold_seconds,
            grant=grant,
            grant_minutes=minutes,
            approvals_needed=_needed(value.get("approvals_needed", 1), action),
            alerts=_alerts(value.get("alerts", [])),
            database_role=_role(value.get("database_role")),
            statement_timeout_seconds=_timeout(value.get("statement_timeout_seconds")),
            moderated=_passing("moderated", value.get("moderated", False), action),
            inspect=_passing("inspect", value.get("inspect", False), action),
        )

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def from_json(text: str) -> Decision:
        """`parse` of a policy result as JSON text. Cached: a pack gives few distinct
        decisions, and a Decision is immutable (its mask is never changed in place), so
        the same text need not be read and checked again."""
        return Decision.parse(orjson.loads(text))

    @property
    def masks_anything(self) -> bool:
        return any(self.mask.get(k) for k in _MASK_LISTS)


# What a decision is when the policy cannot give one: the deny a fail-closed target gets.
POLICY_ERROR = Decision(
    action="deny", reasons=("policy error",), rules=("tollgate.policy_error",), status=403
)
# Rules the gateway adds to a `hold` it settles: an approval let it through; or it came
# after the request had gone upstream, with no approval to cover it, and was refused.
APPROVED = "tollgate.approved"
HOLD_TOO_LATE = "tollgate.hold_too_late"


def _alerts(value: Any) -> tuple[Alert, ...]:
    if not isinstance(value, list):
        raise MalformedDecision(f"alerts must be an array, got {_kind(value)}")
    alerts = []
    for alert in value:
        if not isinstance(alert, dict) or not (
                {"rule", "severity", "message"} <= alert.keys() <= _ALERT_KEYS):
            raise MalformedDecision("each alert must be an object of rule, severity and "
                                    "message, and optionally key")
        rule, severity, message = alert["rule"], alert["severity"], alert["message"]
        key = alert.get("key", "")
        if not isinstance(rule, str) or not rule or not isinstance(message, str) \
                or not isinstance(key, str):
            raise MalformedDecision("an alert's rule, message and key must be strings (a "
                                    "rule not empty)")
        if severity not in _SEVERITIES:
            raise MalformedDecision(f"an alert's severity must be one of "
                                    f"{', '.join(_SEVERITIES)}, got {severity!r}")
        alerts.append(Alert(rule, severity, message, key))
    return tuple(alerts)


def _role(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise MalformedDecision(f"database_role must be a non-empty string, got {value!r}")
    return value


def _timeout(value: Any) -> int | None:
    if value is not None and (type(value) is not int or not 1 <= value <= 86400):
        raise MalformedDecision("statement_timeout_seconds must be an integer 1-86400, "
                                f"got {value!r}")
    return value


def _strings(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedDecision(f"{key} must be a list of strings, got {value!r}")
    return tuple(value)


def _needed(needed: Any, action: str) -> int:
    if type(needed) is not int or not 1 <= needed <= MOST_APPROVALS_NEEDED:
        raise MalformedDecision(f"approvals_needed must be an integer "
                                f"1-{MOST_APPROVALS_NEEDED}, got {needed!r}")
    if needed > 1 and action != "hold":
        raise MalformedDecision("approvals_needed goes with action 'hold', and only with it")
    return needed


def _passing(name: str, value: Any, action: str) -> bool:
    """A term of what passes (moderated, inspect): a boolean, never true on a denial."""
    if type(value) is not bool:
        raise MalformedDecision(f"{name} must be true or false, got {value!r}")
    if value and action == "deny":
        raise MalformedDecision(f"{name} goes with action 'allow' or 'hold', not 'deny'")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
