"""The evidence crosses to the writer process whole: the record built from what
arrives is the record built in place, for every field; what cannot cross is still
recorded, as unbuildable."""

from __future__ import annotations

import dataclasses
import pickle
from collections import Counter

from extproc.masking import Masker, MaskSpec
from extproc.recording import Evidence, wire
from extproc.recording import store as record_store
from extproc.recording.chain import Signer, canonical
from extproc.recording.record import BodyCapture, Decided, content_of
from extproc.store import connect
from tests.recording.conftest import MASKER, evidence, record

STREAM = (b'data: {"choices":[{"delta":{"content":"ada.lovelace@"}}]}\n\n'
          b'data: {"choices":[{"delta":{"content":"example.com"}}]}\n\ndata: [DONE]\n\n')


def everything() -> Evidence:
    """An exchange with every field set, and the values pickle must keep as they are:
    a reading shared with a decision, tuples, an integer beyond 64 bits, a body cut
    short, a binary one."""
    found = evidence(3, body=b'{"sql": "SELECT 1", "card": 4111111111111111}',
                     response_body=b'{"rows": [[1, "ada.lovelace@example.com"]]}',
                     rules=("sql.read",), reasons=("reads orders",))
    found.meaning_key = "sql"
    found.meaning = {"statements": [{"kind": "select", "tables": ("orders",)}],
                     "big": 2**70}
    found.decisions[0].meaning = found.meaning  # the same reading: not repeated
    found.decisions.append(Decided("response", "allow", (), (), 200, "rev-2", 55,
                                   ("group:dba",), 30, {"sql": "an earlier reading"}))
    found.approval = {"id": "ap-1", "status": "approved"}
    found.delivered_type = "text/event-stream"
    found.response_type = "text/event-stream"
    found.response_body = BodyCapture.of(STREAM, 64 * 1024)
    found.upstream_body = BodyCapture.of(b"\xff\xfe binary" * 10, 16)
    found.masked = Counter({"email": 2, "card": 1})
    found.upstream_ms, found.duration_ms = 3.25, 9.5
    found.response_masked = True
    found.outcome = {"http.response.status_code": 200, "tollgate.outcome": "allowed"}
    return found


def test_the_record_built_from_what_crossed_is_the_record_built_in_place() -> None:
    original = everything()
    data = wire.encode(original)
    values, error = pickle.loads(data)
    assert error is None
    assert len(values) == len(dataclasses.fields(Evidence))  # a new field must cross too
    decoded, _ = wire.decode(data)
    assert canonical(content_of(decoded, MASKER)) == canonical(content_of(original, MASKER))
    assert decoded.decisions[0].meaning is decoded.meaning
    assert decoded.response_masked is original.response_masked is True
    assert decoded.upstream_body is not None and decoded.upstream_body.truncated
    assert decoded.upstream_body.sha256 == original.upstream_body.sha256  # type: ignore[union-attr]


async def test_evidence_that_cannot_cross_is_recorded_as_unbuildable(sqlite_url: str,
                                                                     signer: Signer) -> None:
    odd = evidence(1)
    odd.meaning_key, odd.meaning = "sql", {"reader": lambda: None}  # a bug's leftover
    await record(sqlite_url, signer, [odd, evidence(2)])
    connection = connect(sqlite_url)
    try:
        first, second = (row.document() for row in record_store.chain_rows(connection))
    finally:
        connection.close()
    assert first["trace_id"] == f"{1:032x}" and first["outcome"]["action"] == "unknown"
    assert first["error"] == "the record could not be built: TypeError"
    assert first["target"] == {"name": "orders"}
    assert second["outcome"]["action"] == "allow"


def test_the_writer_process_masks_with_the_request_process_key() -> None:
    """The masker crosses as its key (it must stay picklable as such): a `hash` found
    in the writer process is the one the gateway writes."""
    spec = MaskSpec(strategy="hash")
    text = "mail ada.lovelace@example.com"
    crossed = pickle.loads(pickle.dumps(MASKER))
    assert crossed.mask_text(text, spec) == MASKER.mask_text(text, spec)
    assert crossed.mask_text(text, spec) != Masker(b"another key, 32 bytes long......"
                                                   ).mask_text(text, spec)
