"""The policy input of the contract (DESIGN.md, "The policy contract"), as JSON text.

What a target contributes never changes, so it is encoded once per target; each
decision encodes only what the exchange has shown.
"""

from __future__ import annotations

from typing import Any

from extproc import jsonenc
from extproc.config import Target


class InputEncoder:
    def __init__(self, target: Target) -> None:
        static = {
            "target": {
                "name": target.name,
                "protocol": target.protocol,
                "environment": target.environment,
                "labels": target.labels,
            },
            # Filled by the protocol interpreters and approvals, once they exist.
            "sql": None,
            "k8s": None,
            "llm": None,
            "approval": None,
        }
        self._prefix = jsonenc.dumps(static)[:-1]  # without the closing brace

    def encode(
        self, phase: str, identity: dict[str, Any], request: dict[str, Any],
        response: dict[str, Any] | None,
    ) -> str:
        return (
            f'{self._prefix},"phase":"{phase}","identity":{jsonenc.dumps(identity)},'
            f'"request":{jsonenc.dumps(request)},"response":{jsonenc.dumps(response)}}}'
        )
