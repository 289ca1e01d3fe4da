"""The words a record's searchable columns hold, one list for the command line's choices
and the recordings API's filters (kept here, light, so `tollgate --help` loads no store)."""

ACTIONS = ("allow", "deny", "hold", "approve", "alert", "none", "unknown")
KINDS = ("exchange", "decision", "approval", "alert", "policy", "access", "tunnel")
