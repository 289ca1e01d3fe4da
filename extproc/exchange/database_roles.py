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
from collections.abc import Iterable, Sequence
from typing import Any

from extproc.codecs.refusal import BadInput
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Exchange

# Settings whose change is a change of who runs the session: PostgreSQL's role and
# session_authorization (SET, RESET, set_config), MySQL's role (SET ROLE, SET DEFAULT
# ROLE); "*", a set_config whose name is computed when it runs, may be any.
IDENTITY = frozenset({"role", "session_authorization", "*"})
_WORDS = re.compile(r"[a-z_][a-z0-9_]*")
# What in a MySQL SET names no setting: string literals and user variables (`@role`).
_NOT_NAMES = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|(?<!@)@[\w$.]+")


async def login_role(pipeline: Pipeline, exchange: Exchange,
                     roles: Sequence[str]) -> str | None:
    """The login's decision and the role it names, one of `roles`; None where the target
    lists none (the session runs as the gateway's account). BadInput when the policy
    refuses or holds the login (a login cannot wait for a human), or names no role, or
    one the target does not list."""
    exchange.response_mode = "body"  # a login returns nothing to mask
    decision = await pipeline.decide(exchange, "request")
    if decision.action != "allow":
        verb = "holds" if decision.action == "hold" else "refuses"
        reasons = "; ".join(decision.reasons) or "no reason given"
        raise BadInput(decision.status if decision.action == "deny" else 403, "denied",
                       f"the policy {verb} this login: {reasons}",
                       details={"rules": list(decision.rules)})
    role = decision.database_role
    if not roles:
        if role is not None:
            raise BadInput(403, "database_role", f"the policy names database role "
                           f"{role!r}, and this target lists no roles (its `roles`)")
        return None
    if role is None:
        raise BadInput(403, "database_role", "the policy names no database role for "
                       "this identity, and this target runs sessions only as one of its "
                       f"roles ({', '.join(roles)})")
    if role not in roles:
        raise BadInput(403, "database_role", f"the policy names database role {role!r}, "
                       f"which is not one of this target's roles ({', '.join(roles)})")
    return role


def owned_settings(role: str | None, timeouts: Iterable[str] = ()) -> frozenset[str]:
    """The settings the gateway set for a session, which its client may not change:
    who runs it, when it runs as a role, and the timeouts the gateway gave it."""
    return (IDENTITY if role is not None else frozenset()) | frozenset(timeouts)


def owned_change(meaning: Any, owned: frozenset[str]) -> str | None:
    """Why a statement of `meaning` (input.sql) would change a setting of `owned`; None
    when none would."""
    if not owned or not isinstance(meaning, dict):
        return None
    if meaning.get("error"):
        return (f"the statement could not be read ({meaning['error']}): whether it "
                "changes a setting the gateway keeps cannot be known")
    for statement in meaning.get("statements") or ():  # nested ones too: the list is flat
        if not isinstance(statement, dict):
            continue
        names = {str(t.get("name")) for t in statement.get("settings") or ()
                 if isinstance(t, dict)}
        if statement.get("kind") == "set" and not names:
            # MySQL's SET is read for its effects, not its names: by the words of its text.
            text = _NOT_NAMES.sub(" ", str(statement.get("text", "")))
            names = set(_WORDS.findall(text.lower()))
        changed = sorted(names & owned)
        if "*" in changed:
            return ("set_config with a setting name computed when it runs could change a "
                    "setting the gateway keeps (the session's role, its timeouts)")
        if changed:
            name = changed[0]
            kept = ("the session runs as the role the gateway chose for its identity"
                    if name in IDENTITY else "the gateway sets it for every session")
            return (f"the statement changes {name} (a {statement.get('kind', '?').upper()})"
                    f": {kept}")
    return None


def refuse_owned_change(meaning: Any, owned: frozenset[str]) -> None:
    """BadInput (403) when a statement would change a setting of `owned`."""
    reason = owned_change(meaning, owned)
    if reason is not None:
        raise BadInput(403, "session_setting", reason)
