"""Just-in-time approval: a request the policy holds waits for a human.

`model.py` says what an approval is and who may decide it, `store.py` keeps approvals
(SQLite or PostgreSQL) and wakes the requests waiting on them, `notify.py` tells
approvers (a webhook), `hold.py` is what the exchange pipeline does with a `hold` decision.
`pins.py` pins MCP tool definitions, a change waiting for an approval, and
`self_listing.py` lists an MCP server's tools for them when a call names one never listed.

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from extproc.approvals.model import Approval, ApprovalError, fingerprint
from extproc.approvals.store import ApprovalStore

__all__ = ["Approval", "ApprovalError", "ApprovalStore", "fingerprint"]
