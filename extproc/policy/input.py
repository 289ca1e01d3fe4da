"""The policy input of the contract (docs/policies.md), as JSON text.

What a target contributes never changes, so it is encoded once per target; each
decision encodes only what the exchange has shown: who acts, the request, the
response, and what the target's interpreter read them to mean.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from extproc.codecs import jsonenc
from extproc.codecs.message import Request, Response
from extproc.config import Target
from extproc.identity import Who

KEYS = ("sql", "k8s", "llm", "mcp", "postgres", "mysql", "egress", "ssh")
"""Every key an interpreter (or a front: `postgres`, `mysql`, `egress`) may fill; the
others are null in a target's input."""

# The key of the front's own context in the input, by target protocol.
CONTEXT_KEYS = {"postgres": "postgres", "mysql": "mysql", "egress": "egress"}


class ApprovalInput(TypedDict):
    """`input.approval`: the approval that let a held request through."""

    id: str
    status: str  # approved, or used (a `once` grant, taken by this request)
    decided_by: str | None
    decided_us: int | None
    reason: str | None
    grant: str  # once | window
    grant_minutes: int | None
    approvers: list[str]
    # Where the policy asked for more than one approver: how many, and who approved.
    approvals_needed: NotRequired[int]
    approved_by: NotRequired[list[str]]


class TargetInput(TypedDict):
    """`input.target`: the configured target the route belongs to."""

    name: str
    protocol: str  # http, sql-http, k8s, llm, mcp, postgres, mysql, egress or ssh
    environment: str
    labels: dict[str, str]


class InputEncoder:
    def __init__(self, target: Target, meaning_key: str | None = None) -> None:
        # What a front knows of the exchange beyond the request (a PostgreSQL or MySQL
        # session: input.postgres, input.mysql), for the protocols that have it.
        # A destination of the egress proxy is reached only through it: input.egress.
        context_key = "egress" if target.match.destination else CONTEXT_KEYS.get(
            target.protocol)
        target_input: TargetInput = {
            "name": target.name,
            "protocol": target.protocol,
            "environment": target.environment,
            "labels": target.labels,
        }
        static = {
            "target": target_input,
            # What other protocols' interpreters would fill, null for this target.
            **{key: None for key in KEYS if key not in (meaning_key, context_key)},
        }
        self._prefix = jsonenc.dumps(static)[:-1]  # without the closing brace
        # What the pack reads to say whether it decides this target's responses.
        self.target_json = jsonenc.dumps({"target": target_input})
        self._meaning = f',"{meaning_key}":' if meaning_key else ""
        self._context = f',"{context_key}":' if context_key else ""

    def encode(
        self, phase: str, identity: Who, request: Request, response: Response | None,
        meaning: Any = None,
        approval: ApprovalInput | None = None, context: Any = None,
        source: str | None = None, activity: str | None = None, effect: Any = None,
        budget: str | None = None, flow: bytes | None = None,
    ) -> str:
        """`approval`: the approval that let a held request through (null before one did,
        so always null in the request phase's first decision); `context`: the front's
        (input.postgres), for a protocol that has one; `source`: the client's address
        (None where the front cannot know it); `activity`: input.activity as JSON text
        (activity/tracker.py; None: null, as in a what-if replay of an old record);
        `effect`: input.effect, what a write did as the database measured it (None:
        absent); `budget`: input.budget as JSON text (activity/budgets.py; None:
        null, no budget counts the exchange); `flow`: input.flow as JSON (activity/flow.py;
        None: null, as in a probe or a replay)."""
        meaning_json = f"{self._meaning}{jsonenc.dumps(meaning)}" if self._meaning else ""
        if self._context:
            meaning_json += f"{self._context}{jsonenc.dumps(context)}"
        if effect is not None:
            meaning_json += f',"effect":{jsonenc.dumps(effect)}'
        return (
            f'{self._prefix},"phase":"{phase}","identity":{jsonenc.dumps(identity)},'
            f'"request":{jsonenc.dumps(request)},"response":{jsonenc.dumps(response)},'
            f'"approval":{jsonenc.dumps(approval)},'
            f'"source":{jsonenc.dumps({"address": source}) if source else "null"},'
            f'"activity":{activity or "null"},"budget":{budget or "null"},'
            f'"flow":{flow.decode() if flow else "null"}{meaning_json}}}'
        )
