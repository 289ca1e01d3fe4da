"""The words a record's searchable columns hold, and the kinds of session, one list for
the command line's choices and the recordings API's filters (kept here, light, so
`tollgate --help` loads no store)."""

from collections.abc import Collection

ACTIONS = ("allow", "deny", "hold", "approve", "alert", "none", "unknown")
KINDS = ("exchange", "decision", "approval", "alert", "policy", "access", "tunnel",
         "moderation")

# Session kinds, and the target protocols (config.Target.protocol) each is made of: what
# `tollgate audit sessions --kind` and the recordings page filter and label sessions by.
SESSION_KINDS: dict[str, frozenset[str]] = {
    "http": frozenset({"http", "egress"}), "llm": frozenset({"llm"}),
    "mcp": frozenset({"mcp"}), "sql": frozenset({"sql-http", "postgres", "mysql"}),
    "ssh": frozenset({"ssh"}), "kubernetes": frozenset({"k8s"}),
}


def session_kinds(protocols: Collection[str]) -> list[str]:
    """A session's kinds, by its targets' protocols (in SESSION_KINDS' order)."""
    return [kind for kind, made_of in SESSION_KINDS.items()
            if not made_of.isdisjoint(protocols)]
