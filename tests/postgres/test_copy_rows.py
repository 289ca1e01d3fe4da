"""COPY ... TO STDOUT's lines masked by the columns its statement names
(extproc/postgres/copy_rows.py): text and CSV lines split as PostgreSQL writes them,
each value masked under its column's name (the field rules, a derived column whole),
changed values written back in the line's format, the rest byte for byte; what cannot be
read so refused with what to do instead. The statements are read by the real SQL
reader, as the front has them read."""

from __future__ import annotations

from collections import Counter

import pytest

from extproc.interpret.sql import analyze
from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.postgres import encodings
from extproc.postgres.copy_rows import CopyRows, rows_of
from extproc.postgres.results import ResultRefused

MASKER = Masker(b"k" * 32)
SSN = "078-05-1120"
# In an `ssn` column, a value no detector knows: the field rule alone masks it.
CODE = "K7-1120"
FIELD = "[REDACTED:FIELD]"


def rows(statement: str, mask: MaskSpec | None = None, width: int = 3,
         binary: bool = False) -> CopyRows:
    return rows_of(MASKER, mask or MaskSpec(), statement, analyze(statement), binary, width)


def line(copy: CopyRows, text: str) -> tuple[str, Counter[str]]:
    out, counts = copy.line(text.encode())
    return out.decode(), counts


def test_a_query_copied_out_is_masked_by_its_columns() -> None:
    """`ssn` is a field rule of the default mask: masked whole wherever the COPY puts it;
    `note` (an e-mail address in free text) by the detectors."""
    copy = rows("COPY (SELECT id, ssn, note FROM customers) TO STDOUT")
    out, counts = line(copy, f"1\t{SSN}\twrite to ann@example.com\n")
    assert out.startswith("1\t") and SSN not in out and "ann@example.com" not in out
    assert out.endswith("\n") and out.count("\t") == 2
    assert counts


def test_a_line_with_nothing_to_mask_is_left_byte_for_byte() -> None:
    copy = rows("COPY (SELECT id, name, note FROM customers) TO STDOUT")
    text = "7\tA\\tB \\\\ C\\nD\t\\N\n"  # a tab, a backslash, a newline, a NULL
    assert line(copy, text) == (text, Counter())


def test_a_derived_column_is_masked_whole_by_name() -> None:
    statement = "COPY (SELECT id, md5(ssn), name FROM customers) TO STDOUT"
    copy = rows(statement, MaskSpec(derived=frozenset({"md5"})))
    out, counts = line(copy, "1\t0d7f7c1a9b\tAnn\n")
    assert out == "1\t[REDACTED:DERIVED]\tAnn\n" and counts["derived"] == 1


def test_csv_with_a_header_quotes_and_nulls() -> None:
    copy = rows("COPY (SELECT ssn, name, city FROM customers) TO STDOUT "
                "WITH (FORMAT csv, HEADER)")
    assert line(copy, "ssn,name,city\n") == ("ssn,name,city\n", Counter())
    out, _ = line(copy, f'{CODE},"Smith, ""Ann""",\n')
    assert out == f'"{FIELD}","Smith, ""Ann""",\n'
    # A quoted ssn, a NULL (unquoted empty), an empty string (quoted): only the ssn changes.
    out, _ = line(copy, f'"{CODE}",,""\n')
    assert out == f'"{FIELD}",,""\n'


def test_csv_with_other_delimiter_quote_escape_and_null() -> None:
    copy = rows("COPY customers (ssn, name, city) TO STDOUT WITH (FORMAT csv, DELIMITER "
                "';', QUOTE '''', ESCAPE '\\', NULL 'NA')")
    out, _ = line(copy, f"'{CODE}';'O\\'Brien; Pat';NA\n")
    assert out == f"'{FIELD}';'O\\'Brien; Pat';NA\n"


def test_text_with_another_delimiter_escapes_what_it_writes() -> None:
    copy = rows("COPY customers (id, ssn, note) TO STDOUT WITH (DELIMITER '|')")
    out, _ = line(copy, f"1|{CODE}|a\\|b\n")
    assert out == f"1|{FIELD}|a\\|b\n"


def test_old_spellings_of_the_options() -> None:
    copy = rows("COPY (SELECT ssn, id, name FROM customers) TO STDOUT CSV HEADER")
    assert line(copy, "ssn,id,name\n")[0] == "ssn,id,name\n"
    assert line(copy, f"{CODE},1,Ann\n")[0] == f'"{FIELD}",1,Ann\n'


@pytest.mark.parametrize(("statement", "says"), [
    ("COPY customers TO STDOUT", "names none (a table's every column, or *)"),
    ("COPY (SELECT * FROM customers) TO STDOUT", "names none (a table's every column, or *)"),
    ("SELECT 1; COPY customers (id, ssn, note) TO STDOUT", "send it alone"),
    ("COPY customers (id, ssn) TO STDOUT", "the COPY's rows have 3 columns where tollgate "
                                           "read 2"),
], ids=["table", "star", "among-others", "width"])
def test_what_cannot_be_read_by_its_columns_is_refused_under_column_rules(
        statement: str, says: str) -> None:
    with pytest.raises(ResultRefused, match=says.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        rows(statement)


def test_a_binary_copy_is_refused_under_any_mask() -> None:
    with pytest.raises(ResultRefused, match="a binary COPY cannot be read to mask it"):
        rows("COPY (SELECT id FROM customers) TO STDOUT WITH (FORMAT binary)",
             MaskSpec(fields=frozenset()), binary=True)


def test_with_detectors_only_an_unnamed_copy_is_masked_as_text() -> None:
    """No column rules to apply: a COPY of a table's every column passes, each line
    masked by the detectors as before."""
    copy = rows("COPY customers TO STDOUT", MaskSpec(fields=frozenset()))
    out, counts = line(copy, f"1\tssn {SSN}\tann@example.com\n")
    assert SSN not in out and "ann@example.com" not in out and counts


def test_a_copy_is_read_in_its_encoding_or_the_sessions() -> None:
    """COPY's lines come in its ENCODING if it names one, else in the session's: read
    in it, masked, written back in it."""
    copy = rows("COPY customers (id, name, note) TO STDOUT WITH (ENCODING 'LATIN1')")
    out, counts = copy.line("1\tZoë\tzoë@example.com\n".encode("latin-1"))
    assert out.startswith("1\tZoë\t".encode("latin-1")) and b"example" not in out and counts
    euc_jp = encodings.for_session("EUC_JP")
    with encodings.speaking(euc_jp):
        copy = rows("COPY (SELECT id, name, note FROM customers) TO STDOUT")
        data = euc_jp.encode("1\t山田\t太郎 taro@example.jp\n")
        out, counts = copy.line(data)
        # The name column holds a person's name (masking/people.py); the note is read in
        # EUC-JP and written back in it.
        assert euc_jp.decode(out).startswith("1\t[REDACTED:PERSON]\t太郎 ")
        assert b"example" not in out
        assert copy.line(euc_jp.encode("2\tACME\t太郎\n"))[0] == euc_jp.encode(
            "2\tACME\t太郎\n")


@pytest.mark.parametrize("mask", [MaskSpec(), MaskSpec(fields=frozenset())],
                         ids=["columns", "detectors"])
def test_what_the_front_cannot_read_is_refused_under_any_mask(mask: MaskSpec) -> None:
    """An ENCODING the front does not read, and a line not valid in its encoding."""
    with pytest.raises(ResultRefused, match="ENCODING 'SJIS' cannot be read"):
        rows("COPY customers (id, ssn, note) TO STDOUT WITH (ENCODING 'SJIS')", mask)
    copy = rows("COPY customers (id, ssn, note) TO STDOUT", mask)
    with pytest.raises(ResultRefused, match="a line of the COPY is not UTF8 text"):
        copy.line(b"1\t078-05-1120\t\xff\n")


def test_a_tables_copy_writes_each_masked_value_as_its_column_takes_it() -> None:
    """With its table's types (copy_rows.column_types: the catalog's), a `varchar(16)`'s
    and a `char(11)`'s values are fitted, a NOT NULL bigint gets its stand-in, a nullable
    one NULL, in CSV as in text; a column the catalog did not name stays text."""
    statement = "COPY people (ssn, ssn_fixed, card_number, cvv, note) TO STDOUT"
    types = {"ssn": (1043, 20, True), "ssn_fixed": (1042, 15, False),
             "card_number": (20, -1, True), "cvv": (21, -1, False)}
    copy = rows_of(MASKER, MaskSpec(), statement, analyze(statement), False, 5, types)
    out, _ = line(copy, f"{SSN}\t{SSN}\t4111111111111111\t123\t{SSN}\n")
    assert out == "[US_SSN]\t[US_SSN]   \t0\t\\N\t[REDACTED:US_SSN]\n"
    csv = statement.replace("STDOUT", "STDOUT CSV")
    copy = rows_of(MASKER, MaskSpec(), csv, analyze(csv), False, 5, types)
    assert line(copy, f"{SSN},{SSN},4111111111111111,123,x\n")[0] == \
        '"[US_SSN]","[US_SSN]   ","0",,x\n'
