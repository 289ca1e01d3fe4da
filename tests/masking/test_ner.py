"""The local NER model: off unless a mask asks for it, on free text only, within its
budget, and failing closed where it is asked for and absent."""

from __future__ import annotations

import dataclasses
import time

import pytest

from extproc.cli import main
from extproc.masking import Masker, MaskSpec, ner
from extproc.masking.policy_mask import MaskError, new_masker, spec_of
from tests.masking.conftest import KEY

NAMES = MaskSpec(model=frozenset({"person"}))
BOTH = MaskSpec(model=ner.KINDS)
SENTENCE = "Please call Maria Gonzalez about the invoice before Friday."
MASKED = "Please call [REDACTED:PERSON] about the invoice before Friday."


@pytest.fixture(scope="module")
def model() -> ner.Model:
    return ner.load()


@pytest.fixture(scope="module")
def reading(model: ner.Model) -> Masker:
    """A masker whose model always has the time to finish (a busy CI runner is slow)."""
    return Masker(KEY, dataclasses.replace(model, budget_ms=10_000))


def test_a_policy_asks_for_the_model_by_kind() -> None:
    assert MaskSpec.from_policy({"detectors": ["all"], "model": ["person"]}).model == {"person"}
    assert MaskSpec.from_policy({"model": ["all"]}).model == ner.KINDS
    assert MaskSpec.from_policy({"detectors": ["all"]}).model == frozenset()
    assert spec_of([{"detectors": ["all"]}, {"model": ["address"]}]).model == {"address"}
    with pytest.raises(MaskError, match="unknown model kinds: faces"):
        spec_of([{"detectors": ["all"], "model": ["faces"]}])


@pytest.mark.slow
def test_the_model_is_in_no_default(reading: Masker) -> None:
    """`all` detectors, the record's mask: the model does not run."""
    assert MaskSpec().model == frozenset()
    assert reading.mask_text(SENTENCE, MaskSpec()) == (SENTENCE, {})


def test_asked_for_without_a_model_the_request_fails_closed() -> None:
    with pytest.raises(ner.ModelUnavailable, match=r"masking\.model"):
        Masker(KEY).mask_json({"text": SENTENCE}, NAMES)
    with pytest.raises(ner.ModelUnavailable, match="not installed"):
        new_masker(KEY, "no_such_model_package")


def test_names_in_text_and_in_json_strings(reading: Masker) -> None:
    assert reading.mask_text(SENTENCE, NAMES) == (MASKED, {"person_name": 1})
    doc = {"messages": [{"role": "tool", "content": SENTENCE}], "to": "Maria Gonzalez",
           "status": "sent", "n": 3}
    assert reading.mask_json(doc, NAMES) == (
        {"messages": [{"role": "tool", "content": MASKED}], "to": "[REDACTED:PERSON]",
         "status": "sent", "n": 3}, {"person_name": 2})


def test_keys_tables_and_tool_calls_are_not_read(reading: Masker) -> None:
    doc = {"Maria Gonzalez": 1, "choices": [{"message": {"tool_calls": [{"function": {
        "name": "send", "arguments": SENTENCE}}]}}]}
    assert reading.mask_json(doc, NAMES) == (doc, {})
    table = f"id,note\n1,{SENTENCE}\n"
    assert reading.mask_text(table, NAMES, ",") == (table, {})


def test_the_detectors_and_the_model_together(reading: Masker) -> None:
    text = f"{SENTENCE} Mail maria@example.com, born on 12 May 1990."
    masked, counts = reading.mask_text(text, dataclasses.replace(NAMES, detectors=frozenset({
        "email", "date_of_birth"})))
    assert masked == (f"{MASKED} Mail [REDACTED:EMAIL_ADDRESS], born on "
                      "[REDACTED:DATE_OF_BIRTH].")
    assert counts == {"person_name": 1, "email": 1, "date_of_birth": 1}


def test_what_a_detector_masked_is_not_masked_again(reading: Masker) -> None:
    masked, _ = reading.mask_json({"name": "Maria Gonzalez", "note": f"{SENTENCE}"},
                                  dataclasses.replace(NAMES, detectors=frozenset(
                                      {"person_name"})))
    assert masked == {"name": "[REDACTED:PERSON]", "note": MASKED}


def test_street_addresses_with_a_house_number(reading: Masker) -> None:
    text = "Ship it to 221B Baker Street, London by Friday; the Baker Street office is shut."
    assert reading.mask_text(text, BOTH)[0] == (
        "Ship it to [REDACTED:ADDRESS] by Friday; the Baker Street office is shut.")


@pytest.mark.parametrize(("text", "address"), [
    ("Please send it to 8408 Michael Islands Suite 670, Smithshire, NJ 03534 today.",
     "8408 Michael Islands Suite 670, Smithshire, NJ 03534"),
    ("We moved to Studio 4, Ellie Summit, Port Roybury, BN2 2EE. Thanks",
     "Studio 4, Ellie Summit, Port Roybury, BN2 2EE"),
    ("Deliver to 6800 Tina Street, South Michaelfort, QC B7R 2N8 please",
     "6800 Tina Street, South Michaelfort, QC B7R 2N8"),
    ("Moved to 24/24, Rout Circle, Arrah-450777 last week", "24/24, Rout Circle, Arrah-450777"),
])
def test_an_address_written_out_to_its_postcode(reading: Masker, text: str,
                                                address: str) -> None:
    assert reading.mask_text(text, BOTH)[0] == text.replace(address, "[REDACTED:ADDRESS]")


@pytest.mark.parametrize("text", [
    "Version 2, Release Notes, build 20240115 is out.", "Order 42, Blue Widget, SKU 12345",
    "See 3 Tips, Best Practices, 2024", "Port 8080, Docker Compose, v2",
])
def test_numbers_and_titles_that_end_in_no_postcode_pass(reading: Masker, text: str) -> None:
    assert "ADDRESS" not in reading.mask_text(text, BOTH)[0]


@pytest.mark.parametrize(("text", "name"), [
    ("Minutes: Mrs Josephine Evans opened the meeting.", "Mrs Josephine Evans"),
    ("The patient saw Tracy Leonard DDS on Monday.", "Tracy Leonard DDS"),
    ("Hi Debra, your refund has been approved.", "Debra"),
])
def test_a_name_with_its_title_and_a_first_name_alone(reading: Masker, text: str,
                                                      name: str) -> None:
    assert reading.mask_text(text, NAMES)[0] == text.replace(name, "[REDACTED:PERSON]")


def test_a_tiny_budget_leaves_the_text_to_the_detectors(model: ner.Model) -> None:
    hurried = Masker(KEY, dataclasses.replace(model, budget_ms=0.001))
    spec = dataclasses.replace(NAMES, detectors=frozenset({"email"}))
    masked, counts = hurried.mask_text(f"{SENTENCE} a@example.com", spec)
    assert masked == f"{SENTENCE} [REDACTED:EMAIL_ADDRESS]"
    assert counts == {"email": 1, ner.UNFINISHED: 1}
    # Text not worth reading (no capital with a space) costs nothing and finishes.
    assert hurried.mask_json({"id": "abc", "n": "lowercase words"}, spec)[1] == {}


@pytest.mark.timing
def test_a_body_is_read_within_its_budget(model: ner.Model) -> None:
    """400 texts of two sentences, far more than 200 ms of reading: the model stops where
    the next batch would not fit, having read some."""
    bounded = dataclasses.replace(model, budget_ms=200.0)
    texts = [SENTENCE * 2] * 400
    began = time.perf_counter()
    found, finished = bounded.find(texts, frozenset({"person"}))
    took = time.perf_counter() - began
    assert not finished and any(found) and not all(found)
    assert took < 0.200 * 1.25


def test_version_names_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("tollgate ") and f"masking model {ner.MODEL} " in out
    assert "installed, off unless" in out
    assert "not installed" in ner.describe("no_such_model_package")
