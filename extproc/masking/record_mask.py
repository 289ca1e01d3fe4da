"""The record's own mask, and whether a body already masked needs it again.

Every body the audit record keeps is masked with `RECORD_MASK` (every detector and the
default field rules, redacted; what the gateway already masked left as the client got
it). A front masks with it what it quotes beside a body as the record would keep it (a
database's error text shown to an approver), and the record's writer need not scan a
body again whose decision's mask `covers_record`.
"""

from __future__ import annotations

from functools import lru_cache

from extproc.masking.masker import MaskSpec

RECORD_MASK = MaskSpec(keep_masked=True)


@lru_cache(maxsize=64)
def covers_record(spec: MaskSpec) -> bool:
    """Whether a body masked with `spec` holds no data the record's masking would still
    mask: every detector and every default field rule. (What its strategies wrote the
    record keeps as it is, `keep_masked`; a model's tool-call arguments, which a
    decision may leave readable for the agent to act on, the record masks again.)"""
    return spec.detectors >= RECORD_MASK.detectors and spec.fields >= RECORD_MASK.fields
