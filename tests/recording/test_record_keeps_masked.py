"""The record's safety net masks every body again with every detector, and leaves what
the gateway already masked as the client got it: the record shows the client's tokens."""

from __future__ import annotations

import json

import pytest

from extproc.masking import ALL_DETECTORS, MaskSpec
from extproc.masking.masker import DEFAULT_FIELDS
from extproc.masking.record_mask import covers_record
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


TOOL_CALL = {"choices": [{"message": {"content": "card 4111111111111111", "tool_calls": [
    {"type": "function", "function": {"name": "notify", "arguments": json.dumps(
        {"to": "ada@example.com", "host": "10.1.2.3", "card": "4111111111111111"})}}]}}]}


@pytest.mark.parametrize("spec, covers", [
    (MaskSpec(), True),
    (MaskSpec(strategy="hash", fields=DEFAULT_FIELDS | {"iban"}), True),
    # The pack's own: addresses in tool-call arguments left for the agent to act on.
    (MaskSpec(actions=ALL_DETECTORS - {"email", "ip_address"}), True),
    (MaskSpec(detectors=ALL_DETECTORS - {"phone"}), False),
    (MaskSpec(fields=DEFAULT_FIELDS - {"password"}), False),
])
@pytest.mark.parametrize("answer", [ANSWER, TOOL_CALL])
def test_a_body_masked_as_the_record_would_is_not_scanned_again(
    spec: MaskSpec, covers: bool, answer: dict,
) -> None:
    """The writer skips the scan of a delivered body's data exactly when its mask covers
    the record's, and masks its actions all the same: the record is the one a second
    scan of all of it makes."""
    assert covers_record(spec) is covers
    delivered, _ = MASKER.mask_json(answer, spec)
    rescanned = evidence(4, response_body=json.dumps(delivered).encode())
    reused = evidence(4, response_body=json.dumps(delivered).encode())
    reused.response_masked = covers
    recorded = content_of(reused, MASKER)["response"]
    assert recorded == content_of(rescanned, MASKER)["response"]
    assert "ada@example.com" not in json.dumps(recorded)
