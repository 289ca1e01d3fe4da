"""A masked value fits its column (extproc/masking/fitting.py): the ladder's rungs, and
for any value, any strategy and any declared length, through both database fronts'
codecs, a value the column takes back: no longer than its length, padded where the
column pads, nothing of what the strategy hid."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec, fitting
from extproc.masking.fitting import Slot
from extproc.masking.strategies import STRATEGIES
from extproc.mysql.flags import (
    CHARSET_BINARY,
    CHARSET_UTF8MB4_GENERAL_CI,
    MYSQL_TYPE_BLOB,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_STRING,
    MYSQL_TYPE_VAR_STRING,
    NOT_NULL_FLAG,
)
from extproc.mysql.results import ResultMasker as MysqlResultMasker
from extproc.mysql.resultsets import ColumnDefinition
from extproc.postgres.messages import Column
from extproc.postgres.results import ResultMasker as PostgresResultMasker
from tests.masking.conftest import KEY

MASKER = Masker(KEY)
SSN, EMAIL, CARD = "078-05-1120", "ann@example.com", "4111 1111 1111 1111"
SECRETS = [SSN, EMAIL, CARD, "+1 415 555 0123", "DE89370400440532013000"]
DIGEST = "3f2a9c1b4d5e6f70"


@pytest.mark.parametrize(("masked", "original", "slot", "expected"), [
    # Rung 1: what fits stays as the strategy wrote it.
    ("[REDACTED:US_SSN]", SSN, Slot(17), "[REDACTED:US_SSN]"),
    ("***-**-1120", SSN, Slot(11, pad=" "), "***-**-1120"),
    # Rung 2: short tokens; a hash keeps its digest.
    ("[REDACTED:US_SSN]", SSN, Slot(16), "[US_SSN]"),
    ("[REDACTED:US_SSN]", SSN, Slot(11, pad=" "), "[US_SSN]   "),
    (f"[HASH:US_SSN:{DIGEST}]", SSN, Slot(18), f"[{DIGEST}]"),
    ("call [REDACTED:US_SSN] or [REDACTED:EMAIL_ADDRESS]", f"call {SSN} or {EMAIL}",
     Slot(40), "call [US_SSN] or [EMAIL_ADDRESS]"),
    # Rung 3: `[REDACTED]` for a long kind; a hash's bare digest.
    ("[REDACTED:EMAIL_ADDRESS]", EMAIL, Slot(12), "[REDACTED]"),
    (f"[HASH:US_SSN:{DIGEST}]", SSN, Slot(16), DIGEST),
    # Rung 4: the original's shape, or the digest's digits in it.
    ("[REDACTED:US_SSN]", SSN, Slot(7), "***-**-****"[:7]),
    ("[REDACTED:FIELD]", "123", Slot(3, pad=" "), "***"),
    (f"[HASH:US_SSN:{DIGEST}]", SSN, Slot(11), "3f2-a9-c1b4"),
    ("[REDACTED:DERIVED]", None, Slot(4), "****"),
    # In bytes: the shape keeps a multibyte separator, which the cut respects.
    ("[REDACTED:FIELD]", "ab·cd", Slot(6, in_bytes=True), "**·**"),
    # No length: anything goes.
    ("[HASH:US_SSN:" + DIGEST + "]", SSN, fitting.TEXT, "[HASH:US_SSN:" + DIGEST + "]"),
])
def test_the_ladder_takes_the_first_rung_that_fits(masked: str, original: str | None,
                                                   slot: Slot, expected: str) -> None:
    assert fitting.fit(masked, original, slot) == expected


def test_a_derived_value_is_fitted_and_a_typed_slot_has_its_stand_in() -> None:
    assert fitting.derived(Slot(16)) == "[DERIVED]"
    assert fitting.derived(fitting.typed(b"0")) is None


def _size(text: str, slot: Slot) -> int:
    return len(text.encode()) if slot.in_bytes else len(text)


values = st.one_of(
    st.sampled_from(SECRETS),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=12), st.sampled_from(SECRETS),
              st.text(max_size=12)),
    st.lists(st.sampled_from(SECRETS), min_size=2, max_size=4).map(" ".join),
    st.text(max_size=30),
)
slots = st.builds(Slot, st.integers(1, 40), st.booleans(), st.sampled_from(["", " "]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(value=values, strategy=st.sampled_from(STRATEGIES), slot=slots,
       whole=st.booleans())
def test_any_masked_value_fits_any_length_and_hides_what_it_hid(
        value: str, strategy: Any, slot: Slot, whole: bool) -> None:
    spec = MaskSpec(strategy=strategy)
    if whole:  # a field rule: the value masked whole
        masked = MASKER.mask_json({"ssn": value}, spec)[0]["ssn"]
    else:
        masked = MASKER.mask_text(value, spec)[0]
    out = fitting.fit(masked, value, slot)
    assert slot.limit is not None
    assert _size(out, slot) <= slot.limit
    if slot.pad:
        assert _size(out, slot) == slot.limit
    hidden = [s for s in SECRETS if s in value and s not in masked]
    assert not [s for s in hidden if s in out]
    if _size(masked.rstrip(slot.pad) if slot.pad else masked, slot) <= slot.limit:
        assert out.rstrip(slot.pad) == (masked.rstrip(slot.pad) if slot.pad else masked)


@settings(max_examples=60, deadline=None)
@given(value=values, strategy=st.sampled_from(STRATEGIES))
def test_equal_values_hash_alike_at_every_length(value: str, strategy: Any) -> None:
    spec = MaskSpec(strategy=strategy)
    masked = MASKER.mask_json({"ssn": value}, spec)[0]["ssn"]
    again = MASKER.mask_json({"ssn": value}, spec)[0]["ssn"]
    for limit in (1, 5, 11, 16, 18, 30):
        assert fitting.fit(masked, value, Slot(limit)) == fitting.fit(again, value, Slot(limit))


# Both fronts' columns of a declared length n: what the wire says of each, how the
# database sends a value of it, and how long a value it holds, in its unit.
def _pg(oid: int, binary: bool = False) -> Any:
    def column(name: str, n: int) -> tuple[Any, Any]:
        return (Column(name, 0, 1, oid, -1, n + 4, int(binary)),
                lambda v: v.ljust(n) if oid == 1042 else v)
    return column


def _my(kind: int, charset: int, per_char: int) -> Any:
    def column(name: str, n: int) -> tuple[Any, Any]:
        return (ColumnDefinition(name=name, type=kind, charset=charset, length=n * per_char),
                lambda v: v + "\0" * (n - len(v.encode())) if charset == CHARSET_BINARY
                and kind == MYSQL_TYPE_STRING else v)
    return column


COLUMNS = {
    "postgres varchar(n)": (_pg(1043), "chars", ""),
    "postgres char(n)": (_pg(1042), "chars", " "),
    "postgres varchar(n), binary": (_pg(1043, binary=True), "chars", ""),
    "mysql VARCHAR(n)": (_my(MYSQL_TYPE_VAR_STRING, CHARSET_UTF8MB4_GENERAL_CI, 4), "chars",
                         ""),
    "mysql CHAR(n)": (_my(MYSQL_TYPE_STRING, CHARSET_UTF8MB4_GENERAL_CI, 4), "chars", ""),
    "mysql BINARY(n)": (_my(MYSQL_TYPE_STRING, CHARSET_BINARY, 1), "bytes", "\0"),
    "mysql TINYTEXT-like": (_my(MYSQL_TYPE_BLOB, CHARSET_UTF8MB4_GENERAL_CI, 4), "bytes", ""),
}


def _masker(front: str, column: Any, spec: MaskSpec) -> Any:
    if front.startswith("postgres"):
        return PostgresResultMasker(MASKER, spec, [column])
    return MysqlResultMasker(MASKER, spec, [column])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(front=st.sampled_from(sorted(COLUMNS)), value=values,
       strategy=st.sampled_from(STRATEGIES), n=st.integers(1, 40),
       name=st.sampled_from(["note", "ssn"]), derived=st.booleans())
def test_each_front_writes_a_masked_value_its_column_takes_back(
        front: str, value: str, strategy: Any, n: int, name: str, derived: bool) -> None:
    make, unit, pad = COLUMNS[front]
    column, sent = make(name, n)
    size = (lambda t: len(t.encode())) if unit == "bytes" else len
    # What the database sends: a value that fits its column.
    while size(value) > n:
        value = value[:-1]
    value = sent(value)
    spec = MaskSpec(strategy=strategy, derived=frozenset({name} if derived else ()))
    (row,), _ = _masker(front, column, spec).rows([[value.encode()]])
    out = row[0]
    assert out is not None
    text = out.decode()
    assert size(text) <= n
    if pad:
        assert size(text) == n
    masked = MASKER.mask_json({"columns": [name], "rows": [[value]]}, spec)[0]["rows"][0][0]
    assert not [s for s in SECRETS if s in value and s not in masked and s in text]


@pytest.mark.parametrize(("column", "expected"), [
    (Column("card", 0, 1, 20, 8, -1, 0), None),  # nullable: NULL
    (ColumnDefinition(name="card", type=MYSQL_TYPE_LONGLONG, length=20), None),
    (ColumnDefinition(name="card", org_table="people", type=MYSQL_TYPE_LONGLONG, length=20,
                      flags=NOT_NULL_FLAG), b"0"),
    # An expression the server says is NOT NULL is no column a restore fills: NULL.
    (ColumnDefinition(name="card", type=MYSQL_TYPE_LONGLONG, length=20, flags=NOT_NULL_FLAG),
     None),
])
def test_a_number_masked_is_null_or_where_it_cannot_be_its_stand_in(
        column: Any, expected: bytes | None) -> None:
    card = b"4111111111111111"
    masker = (PostgresResultMasker if isinstance(column, Column) else MysqlResultMasker)(
        MASKER, MaskSpec(), [column])
    assert masker.rows([[card]])[0] == [[expected]]


def test_hash_tokens_read_as_the_ladder_reads_them() -> None:
    masked = MASKER.mask_text(SSN, MaskSpec(strategy="hash"))[0]
    match = re.fullmatch(r"\[HASH:US_SSN:([0-9a-f]{16})\]", masked)
    assert match is not None
    assert fitting.fit(masked, SSN, Slot(16)) == match[1]
