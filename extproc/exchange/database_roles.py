"""Least privilege at the database: the role a session runs as, and that it stays so.

A database target lists the roles the gateway may take (`roles`); the login's decision
names one (`database_role`, which the pack maps from the identity's groups) and the
front runs the session as it. The gateway's own account should hold no privilege of its
own: then a reader's gap is no bypass, since what the session may do is what the
database lets that role do. The role is the gateway's state, not the client's: a
statement that would change it (SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION, their
function forms, PostgreSQL's DISCARD ALL, which resets the session's authorization) is
refused here, whatever the pack says, as is a setting whose name the text does not say.
So is a change of the timeouts the gateway gives a session (an idle transaction's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from extproc.codecs.refusal import Refused, refusal_of
from extproc.exchange.act import Act

# Settings whose change is a change of who runs the session: PostgreSQL's role and
# session_authorization (SET, RESET, set_config), MySQL's role (SET ROLE, SET DEFAULT
# ROLE); "*", a set_config whose name is computed when it runs, may be any.
IDENTITY = frozenset({"role", "session_authorization", "*"})
_WORDS = re.compile(r"[a-z_][a-z0-9_]*")
# A PostgreSQL duration: a number and its unit (none: milliseconds, for the timeouts).
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>us|ms|s|min|h|d)?")
_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
# What in a MySQL SET names no setting: string literals and user variables (`@role`).
_NOT_NAMES = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|(?<!@)@[\w$.]+")


async def login_role(act: Act, roles: Sequence[str]) -> str | None:
    """The login's decision and the role it names, one of `roles`; None where the target
    lists none (the session runs as the gateway's account). Refusal when the policy
    refuses or holds the login (a login cannot wait for a human), or names no role, or
    one the target does not list."""
    act.exchange.response_mode = "body"  # a login returns nothing to mask
    decision = await act.decide()
    if decision.action != "allow":
        verb = "holds" if decision.action == "hold" else "refuses"
        reasons = "; ".join(decision.reasons) or "no reason given"
        raise refusal_of(decision.status if decision.action == "deny" else 403, "denied",
                       f"the policy {verb} this login: {reasons}",
                       details={"rules": list(decision.rules)})
    role = decision.database_role
    if not roles:
        if role is not None:
            raise Refused(403, "database_role", f"the policy names database role "
                           f"{role!r}, and this target lists no roles (its `roles`)")
        return None
    if role is None:
        raise Refused(403, "database_role", "the policy names no database role for "
                       "this identity, and this target runs sessions only as one of its "
                       f"roles ({', '.join(roles)})")
    if role not in roles:
        raise Refused(403, "database_role", f"the policy names database role {role!r}, "
                       f"which is not one of this target's roles ({', '.join(roles)})")
    return role


def owned_settings(role: str | None, timeouts: Mapping[str, int | None] | None = None
                   ) -> dict[str, int | None]:
    """The settings the gateway set for a session, which its client may not change: who
    runs it, when it runs as a role, and the timeouts the gateway gave it, each with its
    value in milliseconds where a client may lower it (None: no change at all)."""
    kept: dict[str, int | None] = dict.fromkeys(IDENTITY) if role is not None else {}
    kept.update(timeouts or {})
    return kept


def owned_change(meaning: Any, owned: Mapping[str, int | None]) -> str | None:
    """Why a statement of `meaning` (input.sql) would change a setting of `owned`; None
    when none would. A timeout set lower than the gateway's (not to 0, which is none at
    all) is no change of what it keeps."""
    if not owned or not isinstance(meaning, dict):
        return None
    if meaning.get("error"):
        return (f"the statement could not be read ({meaning['error']}): whether it "
                "changes a setting the gateway keeps cannot be known")
    for statement in meaning.get("statements") or ():  # nested ones too: the list is flat
        if not isinstance(statement, dict):
            continue
        # A timeout's RESET returns to the value the gateway gave the session at its
        # start (the role's would too on PostgreSQL; it is refused all the same).
        names = {str(t.get("name")) for t in statement.get("settings") or ()
                 if isinstance(t, dict) and t.get("name") in owned
                 and (not t.get("reset") or t.get("name") in IDENTITY)
                 and not _lower(t.get("value"), owned[t["name"]])}
        if statement.get("kind") == "set" and not statement.get("settings"):
            # MySQL's SET is read for its effects, not its names: by the words of its text.
            text = _NOT_NAMES.sub(" ", str(statement.get("text", "")))
            names = set(_WORDS.findall(text.lower()))
        changed = sorted(names & owned.keys())
        if "*" in changed:
            return ("set_config with a setting name computed when it runs could change a "
                    "setting the gateway keeps (the session's role, its timeouts)")
        if changed:
            name = changed[0]
            kept = ("the session runs as the role the gateway chose for its identity"
                    if name in IDENTITY else
                    "the gateway sets it for every session (a lower value may be set)")
            return (f"the statement changes {name} (a {statement.get('kind', '?').upper()})"
                    f": {kept}")
    return None


def _lower(value: Any, most_ms: int | None) -> bool:
    """Whether `value` (a PostgreSQL duration as SET writes it: 5000, '5s', '1min') is a
    timeout no longer than `most_ms` and not 0 (no timeout)."""
    if most_ms is None or not isinstance(value, str):
        return False
    found = _DURATION.fullmatch(value.strip().lower())
    if found is None:
        return False
    ms = float(found["number"]) * _UNITS_MS[found["unit"] or "ms"]
    return 0 < ms <= most_ms


def refuse_owned_change(meaning: Any, owned: Mapping[str, int | None]) -> None:
    """Refusal (403) when a statement would change a setting of `owned`."""
    reason = owned_change(meaning, owned)
    if reason is not None:
        raise Refused(403, "session_setting", reason)
