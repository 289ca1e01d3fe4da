"""Strings that hold JSON documents, read as the documents they hold
(extproc/masking/documents.py): a tool's rows given as JSON text are masked by column as a
database front masks them, records by key, documents inside documents too; text that
only looks like JSON, or whose reading would lose part of it, is read as text; a document
nothing was masked in comes back as written, a masked one in its layout."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from extproc.masking import Masker, MaskSpec
from extproc.masking.documents import MAX_DEPTH, Documents

from .conftest import KEY

MASKER = Masker(KEY)
SPEC = MaskSpec()
NAME, MAIL, SSN = "Ada Lovelace", "ada.lovelace@example.com", "512-34-6789"
SECRET = "correct-horse-battery"
COLUMNS = ["id", "name", "email", "ssn", "password"]
ROW = [1001, NAME, MAIL, SSN, SECRET]


def masked(value: Any, spec: MaskSpec = SPEC) -> tuple[Any, Counter[str]]:
    """`value` masked as the MCP front masks a server's message."""
    documents = Documents(value)
    out, counts = MASKER.mask_json(documents.value, spec)
    return documents.written(out), counts


def test_rows_given_as_json_text_read_as_a_database_front_reads_them() -> None:
    table = {"columns": COLUMNS, "rows": [ROW]}
    out, counts = masked({"content": [{"type": "text", "text": json.dumps(table)}]})
    # What both database fronts mask a result as (masking/rows.py): the same table.
    rows, row_counts = MASKER.mask_json(table, SPEC)
    assert json.loads(out["content"][0]["text"]) == rows
    assert rows["rows"][0][1:] == ["[REDACTED:PERSON]", "[REDACTED:EMAIL_ADDRESS]",
                                   "[REDACTED:US_SSN]", "[REDACTED:FIELD]"]
    assert counts == row_counts
    # As text, the name and the password passed.
    as_text, _ = MASKER.mask_json({"text": json.dumps(table)}, SPEC)
    assert NAME in as_text["text"] and SECRET in as_text["text"]


@pytest.mark.parametrize("key", ["name", "Name", "NAME", "full_name", "fullName"])
def test_records_are_read_by_their_keys_in_any_case(key: str) -> None:
    records = json.dumps([{"id": 1, key: NAME, "Password": SECRET}, {"id": 2, key: None}])
    out, counts = masked({"structuredContent": {"result": records}})
    assert json.loads(out["structuredContent"]["result"]) == [
        {"id": 1, key: "[REDACTED:PERSON]", "Password": "[REDACTED:FIELD]"},
        {"id": 2, key: None}]
    assert counts == Counter({"person_name": 1, "field:password": 1})


def test_documents_inside_documents_are_read_to_a_depth() -> None:
    inner = json.dumps({"name": NAME})
    out, _ = masked({"text": json.dumps({"result": inner, "rows": [json.dumps([inner])]})})
    outer = json.loads(out["text"])
    assert json.loads(outer["result"]) == {"name": "[REDACTED:PERSON]"}
    assert json.loads(json.loads(outer["rows"][0])[0]) == {"name": "[REDACTED:PERSON]"}
    deepest = inner
    for _ in range(MAX_DEPTH):
        deepest = json.dumps({"doc": deepest})
    assert type(Documents({"text": deepest}).value["text"]["doc"]["doc"]["doc"]) is str


@pytest.mark.parametrize("text", [
    '{"name": ' + json.dumps(NAME),  # cut short
    "{name: " + NAME + "}",  # not JSON
    '{"name": "x"} {"name": "y"}',  # two documents
    '"' + NAME + '"',  # a string
    "[NaN]", '{"n": Infinity}',  # no JSON numbers
    '{"name": ' + json.dumps(NAME) + ', "name": "x"}',  # a key twice: one would hide
    '{"card": 4111111111111111111.0}',  # digits a float loses
    "", "   ", "[", "}",
])
def test_text_that_is_no_document_or_reads_with_loss_is_read_as_text(text: str) -> None:
    documents = Documents({"text": text})
    assert not documents and documents.value == {"text": text}
    assert masked({"text": text}) == MASKER.mask_json({"text": text}, SPEC)


def test_a_key_twice_keeps_the_text_reading_of_both() -> None:
    out, _ = masked({"text": '{"name": ' + json.dumps(NAME) + ', "name": "x"}'})
    assert NAME not in out["text"]


@pytest.mark.parametrize("text", [
    json.dumps({"rows": [[1, "no one"]], "columns": ["id", "name"]}),
    '\n  {"a":[1,2.5,{"b":"ü"}]}\n',
    json.dumps([{"x": "é"}], indent=2),
])
def test_a_document_nothing_was_masked_in_comes_back_as_written(text: str) -> None:
    value = {"content": [{"type": "text", "text": text}], "structuredContent": {"t": text}}
    out, counts = masked(value)
    assert not counts and out == value


@pytest.mark.parametrize("layout", [
    {}, {"separators": (",", ":"), "ensure_ascii": False}, {"indent": 2},
    {"indent": 2, "ensure_ascii": False}])
def test_a_masked_document_is_written_in_its_layout(layout: dict[str, Any]) -> None:
    document = {"who": [{"name": NAME, "city": "Zürich"}], "n": 1.5}
    out, _ = masked({"text": " " + json.dumps(document, **layout) + "\n"})
    document["who"][0]["name"] = "[REDACTED:PERSON]"  # type: ignore[index]
    assert out["text"] == " " + json.dumps(document, **layout) + "\n"


def test_a_document_in_no_known_layout_is_written_compact() -> None:
    out, _ = masked({"text": '{ "name" :  "' + NAME + '" }'})
    assert out["text"] == '{"name":"[REDACTED:PERSON]"}'


def test_keys_the_masker_renames_keep_each_document_in_its_place() -> None:
    records = json.dumps({"name": NAME})
    value = {"ann@example.com": {"text": records}, "b": [{"text": records}]}
    out, _ = masked(value)
    assert list(out) == ["[REDACTED:EMAIL_ADDRESS]", "b"]
    for text in (out["[REDACTED:EMAIL_ADDRESS]"]["text"], out["b"][0]["text"]):
        assert json.loads(text) == {"name": "[REDACTED:PERSON]"}

