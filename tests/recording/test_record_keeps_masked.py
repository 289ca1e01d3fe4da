"""The record's safety net masks every body again with every detector, and leaves what
the gateway already masked as the client got it: the record shows the client's tokens."""

from __future__ import annotations

import json

import pytest

from extproc.masking import MaskSpec
from extproc.recording.record import content_of
from tests.recording.conftest import MASKER, evidence

ANSWER = {"customers": [{"name": "Ada", "ssn": "512-34-6789", "card_number": "4111111111111111",
                         "password": "correct-horse", "note": "mail ada@example.com"}]}


@pytest.mark.parametrize("strategy", ["redact", "partial", "hash"])
def test_a_masked_answer_is_recorded_as_the_client_got_it(strategy: str) -> None:
    delivered, _ = MASKER.mask_json(ANSWER, MaskSpec(strategy=strategy))  # type: ignore[arg-type]
    found = evidence(1, response_body=json.dumps(delivered).encode())
    assert content_of(found, MASKER)["response"]["body"]["value"] == delivered


def test_an_event_stream_is_recorded_as_the_client_got_it() -> None:
    events = "".join(f"data: {json.dumps(MASKER.mask_json(c, MaskSpec())[0])}\n\n"
                     for c in ANSWER["customers"])
    assert '"ssn": "[REDACTED:US_SSN]"' in events
    found = evidence(2, response_body=events.encode())
    found.response_type = "text/event-stream"
    assert content_of(found, MASKER)["response"]["body"]["value"] == events


def test_what_the_client_got_in_clear_is_still_masked() -> None:
    """A privileged caller saw the SSN and the e-mail: the record masks them anyway."""
    delivered, _ = MASKER.mask_json(ANSWER, MaskSpec(detectors={"jwt"}, fields={"password"}))
    found = evidence(3, response_body=json.dumps(delivered).encode())
    (kept,) = content_of(found, MASKER)["response"]["body"]["value"]["customers"]
    assert kept == {"name": "Ada", "ssn": "[REDACTED:US_SSN]",
                    "card_number": "[REDACTED:CREDIT_CARD]", "password": "[REDACTED:FIELD]",
                    "note": "mail [REDACTED:EMAIL_ADDRESS]"}
