"""The policy input of the contract (docs/policies.md), as JSON text.

What a target contributes never changes, so it is encoded once per target; each
decision encodes only what the exchange has shown: who acts, the request, the
response, and what the target's interpreter read them to mean.
"""

from __future__ import annotations

from typing import Any

from extproc import jsonenc
from extproc.config import Target
from extproc.interpret import KEYS


class InputEncoder:
    def __init__(self, target: Target, meaning_key: str | None = None) -> None:
        static = {
            "target": {
                "name": target.name,
                "protocol": target.protocol,
                "environment": target.environment,
                "labels": target.labels,
            },
            # What other protocols' interpreters would fill, null for this target.
            **{key: None for key in KEYS if key != meaning_key},
            # Filled by approvals, once they exist.
            "approval": None,
        }
        self._prefix = jsonenc.dumps(static)[:-1]  # without the closing brace
        self._meaning = f',"{meaning_key}":' if meaning_key else ""

    def encode(
        self, phase: str, identity: dict[str, Any], request: dict[str, Any],
        response: dict[str, Any] | None, meaning: Any = None,
    ) -> str:
        meaning_json = f"{self._meaning}{jsonenc.dumps(meaning)}" if self._meaning else ""
        return (
            f'{self._prefix},"phase":"{phase}","identity":{jsonenc.dumps(identity)},'
            f'"request":{jsonenc.dumps(request)},"response":{jsonenc.dumps(response)}'
            f"{meaning_json}}}"
        )
