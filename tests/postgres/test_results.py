"""Rows masked by column, in text and binary formats: what cannot be read under a mask
is refused, what cannot hold a masked value becomes NULL."""

from __future__ import annotations

import json
import struct

import pytest

from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.postgres import encodings
from extproc.postgres.messages import Column
from extproc.postgres.results import ResultMasker, ResultRefused, record_sample

MASKER = Masker(b"k" * 32)
SPEC = MaskSpec()


def column(name: str, oid: int, fmt: int = 0) -> Column:
    return Column(name, 16384, 1, oid, -1, -1, fmt)


def test_text_values_are_masked_by_detector_and_by_column_name() -> None:
    columns = [column("id", 23), column("email", 25), column("ssn", 25), column("note", 1043)]
    masker = ResultMasker(MASKER, SPEC, columns)
    rows, counts = masker.rows([[b"1", b"ann@example.com", b"not-a-number",
                                 b"call 078-05-1120"], [b"2", None, None, b"nothing"]])
    assert rows[0][0] == b"1" and rows[1] == [b"2", None, None, b"nothing"]
    assert b"ann@example.com" not in rows[0][1]  # type: ignore[operator]
    assert rows[0][2] != b"not-a-number"  # the column's name is a field rule
    assert b"078-05-1120" not in rows[0][3]  # type: ignore[operator]
    assert counts["field:ssn"] == 1 and sum(counts.values()) >= 3


def test_a_masked_value_of_a_non_text_type_becomes_null() -> None:
    columns = [column("card", 20), column("card", 20, fmt=1)]
    card = 4111111111111111
    rows, counts = ResultMasker(MASKER, SPEC, columns).rows(
        [[str(card).encode(), struct.pack("!q", card)]])
    assert rows == [[None, None]] and counts


def test_binary_numbers_and_numerics_are_read() -> None:
    # numeric 4111111111111111 in base 10000: 4 digits, weight 3.
    numeric = struct.pack("!hhHh4h", 4, 3, 0, 0, 4111, 1111, 1111, 1111)
    masker = ResultMasker(MASKER, SPEC, [column("amount", 1700, 1), column("n", 23, 1)])
    rows, _ = masker.rows([[numeric, struct.pack("!i", 7)]])
    assert rows == [[None, struct.pack("!i", 7)]]
    small = struct.pack("!hhHh2h", 2, 0, 0x4000, 2, 12, 5000)  # -12.50
    assert record_sample([column("amount", 1700, 1)], [[small]], 1000) == json.dumps(
        {"columns": ["amount"], "rows": [["-12.50"]], "rows_left_out": 0}).encode()


def test_jsonb_in_binary_is_masked_and_stays_jsonb() -> None:
    masker = ResultMasker(MASKER, SPEC, [column("doc", 3802, 1)])
    value = b"\x01" + json.dumps({"email": "ann@example.com", "n": 1}).encode()
    rows, _ = masker.rows([[value]])
    out = rows[0][0]
    assert out is not None and out[:1] == b"\x01"
    doc = json.loads(out[1:])
    assert doc["n"] == 1 and "ann@example.com" not in doc["email"]


def test_a_binary_value_tollgate_cannot_read_is_refused_under_a_mask() -> None:
    with pytest.raises(ResultRefused, match="binary"):  # an extension's type: citext
        ResultMasker(MASKER, SPEC, [column("nick", 16390, 1)])
    # Types that cannot hold text pass in binary, and nothing is refused without a mask.
    ResultMasker(MASKER, SPEC, [column("at", 1184, 1), column("ok", 16, 1)])
    assert not ResultMasker(MASKER, None, [column("nick", 16390, 1)]).masks


def test_the_record_sample_stays_within_its_limit_and_says_what_it_left_out() -> None:
    columns = [column("id", 23)]
    sample = json.loads(record_sample(columns, [[str(i).encode()] for i in range(1000)], 200))
    assert 0 < len(sample["rows"]) < 1000
    assert sample["rows_left_out"] == 1000 - len(sample["rows"])
    assert len(json.dumps(sample)) <= 200


def test_the_record_sample_shows_binary_values_as_their_text_format_would() -> None:
    items = b"".join(struct.pack("!i", len(i)) + i for i in (b"a", b"bc"))
    array = struct.pack("!iiIii", 1, 0, 25, 2, 1) + items
    columns = [column("tags", 1009, 1), column("blob", 17, 1), column("nick", 16390, 1)]
    sample = json.loads(record_sample(columns, [[array, b"\x00\xff", b"ann"]], 1000))
    assert sample["rows"] == [[["a", "bc"], "\\x00ff", "<3 bytes, binary>"]]


def test_values_are_read_and_masked_in_the_sessions_encoding() -> None:
    """In EUC_JP, text and binary alike (the database writes a text's binary form in
    the client encoding too): the name is kept as it came, the address masked and
    written in EUC_JP."""
    euc_jp = encodings.for_session("EUC_JP")
    value = euc_jp.encode("山田 taro@example.jp")
    columns = [column("note", 25), column("note", 25, fmt=1)]
    with encodings.speaking(euc_jp):
        rows, counts = ResultMasker(MASKER, SPEC, columns).rows([[value, value]])
    for masked in rows[0]:
        assert masked is not None and masked != value
        text = euc_jp.decode(masked)
        assert text.startswith("山田 ") and "taro@example.jp" not in text
    assert counts


@pytest.mark.parametrize("fmt", [0, 1], ids=["text", "binary"])
def test_a_value_not_valid_in_the_sessions_encoding_is_refused_not_relayed(fmt: int) -> None:
    """What cannot be read cannot be masked for sure: its result is refused (a lenient
    reading could have a multibyte lead swallow the digits a detector looks for)."""
    with encodings.speaking(encodings.for_session("EUC_JP")), \
            pytest.raises(ResultRefused, match="column 'note'"):
        ResultMasker(MASKER, SPEC, [column("note", 25, fmt)]).rows(
            [[b"call \x8f\xa2\xb7078-05-1120"]])
