"""The writer masks a batch of records in one scan: each record comes out exactly as it
would alone, and a record whose masking fails fails alone."""

from __future__ import annotations

import json
from typing import Any

from extproc.masking import Masker, MaskSpec
from extproc.recording import Evidence
from extproc.recording.chain import canonical
from extproc.recording.record import content_of, contents_of
from tests.recording.conftest import MASKER
from tests.recording.conftest import evidence as _evidence
from tests.recording.test_record_keeps_masked import ANSWER, TOOL_CALL


def evidence(n: int, **fields: Any) -> Evidence:
    """One at a fixed time: built twice, the same record."""
    return _evidence(n, started=1_790_000_000.0 + n, **fields)


def _varied() -> list[Evidence]:
    """Records of every shape the writer sees, with data for every kind of context."""
    plain = evidence(1)
    headers = evidence(2, reasons=("blocked: 123-45-6789",), rules=("sql.destructive",))
    assert headers.request is not None
    headers.request["headers"] = {"x-aws-region": "eu-west-1", "phone": "0612345678",
                                  "x-aws-secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    headers.request["query"] = {"ssn": ["078-05-1120"], "q": ["ann@example.com"]}
    bodies = evidence(3, body=json.dumps({"card": "4111 1111 1111 1111", "pwd": "x1"}).encode(),
                      response_body=json.dumps(ANSWER).encode())
    masked = evidence(4, response_body=json.dumps(
        MASKER.mask_json(TOOL_CALL, MaskSpec())[0]).encode())
    masked.response_masked = True
    stream = evidence(5, response_body=b'data: {"choices": [{"delta": {"content": "4111 '
                      b'1111"}}]}\n\ndata: {"choices": [{"delta": {"content": " 1111 1111"}}]}'
                      b"\n\ndata: [DONE]\n\n")
    stream.response_type = "text/event-stream"
    reading = evidence(6)
    reading.meaning_key = "sql"
    reading.meaning = {"statements": [{"text": "SELECT 1 WHERE email = 'bo@example.org'"}]}
    separators = evidence(7, body=b'{"k\\u0000": "a\\u0001 512-34-6789"}')  # scanned apart
    digits = evidence(8, response_body="{\"phone\": \"\u0660\u0666\u0661\u0662\u0663\u0664"
                      "\u0665\u0666\u0667\u0668\"}".encode())  # Arabic-Indic digits
    return [plain, headers, bodies, masked, stream, reading, separators, digits]


def test_a_batch_is_masked_as_each_record_alone() -> None:
    alone = [canonical(content_of(e, MASKER)) for e in _varied()]
    together = contents_of(_varied(), MASKER)
    assert [canonical(c) for c in together] == alone  # type: ignore[arg-type]
    for canary in ("123-45-6789", "078-05-1120", "ann@example.com", "4111 1111 1111 1111",
                   "bo@example.org", "512-34-6789", "wJalrXUtnFEMI"):
        assert canary not in "".join(alone), canary


def test_many_records_of_one_shape_are_masked_alike() -> None:
    """The offsets of fifty records' findings map back to their own records."""
    batch = [evidence(n, response_body=json.dumps(
        {"email": f"user{n}@example.com", "n": n}).encode()) for n in range(50)]
    for n, content in enumerate(contents_of(batch, MASKER)):
        assert isinstance(content, dict)
        assert content["response"]["body"]["value"] == {"email": "[REDACTED:EMAIL_ADDRESS]",
                                                        "n": n}


class _FailingOn(Masker):
    """A masker that fails on any value holding `marker` (a bug in one record's data)."""

    def __init__(self, marker: str) -> None:
        super().__init__(b"k" * 32)
        self._marker = marker

    def mask_json(self, value: Any, spec: MaskSpec) -> Any:
        if self._marker in json.dumps(value):
            raise ValueError("cannot mask this")
        return super().mask_json(value, spec)


def test_a_record_that_cannot_be_masked_fails_alone() -> None:
    batch = [evidence(1, response_body=b'{"a": "ann@example.com"}'),
             evidence(2, response_body=b'{"a": "poison"}'),
             evidence(3, response_body=b'{"a": "bo@example.org"}')]
    first, second, third = contents_of(batch, _FailingOn("poison"))
    assert isinstance(second, ValueError)
    for content in (first, third):
        assert isinstance(content, dict)
        assert content["response"]["body"]["value"]["a"] == "[REDACTED:EMAIL_ADDRESS]"
