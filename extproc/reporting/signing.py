"""A report signed with the audit key, so that it can be checked away from tollgate.

The signature is a statement of kind `report` (chain.py's, domain-separated from
checkpoints by its kind) over the SHA-256 of the report's canonical JSON (keys sorted,
no spaces, UTF-8: the encoding records are hashed in). Whoever holds the public key
(`tollgate audit public-key`) can check that not one value changed since tollgate
wrote it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from extproc.recording.chain import Checkpoint, Signer, Verifier, canonical

_KIND, _SUBJECT = "report", "audit-report"
_FIELDS = {"writer": str, "seq": int, "kind": str, "hash": str, "signed_us": int,
           "key_id": str, "signature": str}


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(data).encode()).hexdigest()


def signed(data: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """The document written out: the report's data and its signature."""
    signature = signer.sign(_KIND, _SUBJECT, 0, digest(data), int(time.time() * 1_000_000))
    return {"report": data, "signature": signature.as_json()}


def problem(document: Any, verifier: Verifier) -> str | None:
    """Why `document` is not a report signed with `verifier`'s key (None: it is). Raises
    ValueError when it is not shaped as a signed report at all."""
    if not isinstance(document, dict) or set(document) != {"report", "signature"}:
        raise ValueError('not a signed report (expected {"report": ..., "signature": ...})')
    data, signature = document["report"], document["signature"]
    if not isinstance(signature, dict) or set(signature) != set(_FIELDS) or any(
            type(signature[name]) is not kind for name, kind in _FIELDS.items()):
        raise ValueError("its signature is not a signature tollgate writes")
    statement = Checkpoint(**signature)
    if not isinstance(data, dict) or statement.kind != _KIND or statement.writer != _SUBJECT:
        raise ValueError("its signature is not a report's")
    if statement.key_id != verifier.key_id:
        return f"signed with key {statement.key_id}, not {verifier.key_id}"
    if not verifier.valid(statement):
        return "the signature is not the audit key's (the signature was altered)"
    if digest(data) != statement.hash:
        return "the report was altered after it was signed (its hash differs)"
    return None
