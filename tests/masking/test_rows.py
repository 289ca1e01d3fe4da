"""One rows masker for both database fronts (extproc/masking/rows.py): the same rows,
read and written by PostgreSQL's column codec and by MySQL's, come out alike; a masked
value of a string type becomes its masked text, of any other type NULL; a derived column
is replaced whole, unread."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from extproc.codecs.rows import Rows
from extproc.masking import Masker, fitting
from extproc.masking import rows as rows_module
from extproc.masking.fitting import Slot
from extproc.masking.masker import MaskSpec
from extproc.masking.rows import RowMasker
from extproc.mysql.flags import CHARSET_UTF8MB4_GENERAL_CI as UTF8MB4
from extproc.mysql.flags import MYSQL_TYPE_BLOB, MYSQL_TYPE_LONGLONG
from extproc.mysql.results import ResultMasker as MysqlResultMasker
from extproc.mysql.resultsets import ColumnDefinition
from extproc.postgres.messages import Column
from extproc.postgres.results import ResultMasker as PostgresResultMasker

from .conftest import KEY

MASKER = Masker(KEY)
# A string column, an integer one, and two the SQL derived from a protected column: one
# of a string type, one of an integer type.
NAMES = ["email", "card", "initials", "digits"]
STRING, INTEGER = "string", "integer"
TYPES = [STRING, INTEGER, STRING, INTEGER]
ROWS: Rows = [
    [b"ann@example.com", b"4111111111111111", b"AL", b"7"],
    [b"nothing here", b"42", None, b"8"],
    [None, None, b"BK", None],
]
DERIVED = MaskSpec(derived=frozenset({"initials", "digits"}))

_PG_TYPES = {STRING: 25, INTEGER: 20}  # text, bigint
_MY_TYPES = {STRING: MYSQL_TYPE_BLOB, INTEGER: MYSQL_TYPE_LONGLONG}


def _postgres(spec: MaskSpec | None) -> RowMasker[Any]:
    return PostgresResultMasker(MASKER, spec, [
        Column(name, 16384, i + 1, _PG_TYPES[kind], -1, -1, 0)
        for i, (name, kind) in enumerate(zip(NAMES, TYPES, strict=True))])


def _mysql(spec: MaskSpec | None) -> RowMasker[Any]:
    return MysqlResultMasker(MASKER, spec, [  # a TEXT in utf8mb4; a BIGINT
        ColumnDefinition(name=name, type=_MY_TYPES[kind], charset=UTF8MB4, length=262140)
        for name, kind in zip(NAMES, TYPES, strict=True)])


FRONTS = pytest.mark.parametrize("front", [_postgres, _mysql], ids=["postgres", "mysql"])


def _masked(codec: str, names: list[str], types: list[str], rows: Rows,
            spec: MaskSpec | None = None) -> tuple[Rows, Counter[str]]:
    """`rows` of columns `names` of `types`, masked as `codec`'s front masks them."""
    spec = spec or MaskSpec()
    if codec == "postgres":
        masker: RowMasker[Any] = PostgresResultMasker(MASKER, spec, [
            Column(name, 16384, i + 1, _PG_TYPES[kind], -1, -1, 0)
            for i, (name, kind) in enumerate(zip(names, types, strict=True))])
    else:
        masker = MysqlResultMasker(MASKER, spec, [
            ColumnDefinition(name=name, type=_MY_TYPES[kind], charset=UTF8MB4, length=262140)
            for name, kind in zip(names, types, strict=True)])
    return masker.rows(rows)


@FRONTS
def test_a_string_is_masked_as_text_and_an_integer_becomes_null(
        front: Callable[[MaskSpec | None], RowMasker[Any]]) -> None:
    rows, counts = front(DERIVED).rows(ROWS)
    email, card, initials, digits = rows[0]
    assert email is not None and b"ann@example.com" not in email and b"REDACTED" in email
    assert card is None  # no text can stand in a bigint or a BIGINT
    assert (initials, digits) == (b"[REDACTED:DERIVED]", None)
    assert rows[1] == [b"nothing here", b"42", None, None]
    assert rows[2] == [None, None, b"[REDACTED:DERIVED]", None]
    assert counts == Counter({"email": 1, "credit_card": 1, "derived": 4})


def test_both_fronts_mask_the_same_rows_alike() -> None:
    for spec in (None, MaskSpec(), DERIVED, MaskSpec(detectors=frozenset())):
        assert _postgres(spec).rows(ROWS) == _mysql(spec).rows(ROWS)


@FRONTS
def test_rows_without_a_mask_pass_as_they_came(
        front: Callable[[MaskSpec | None], RowMasker[Any]]) -> None:
    masker = front(None)
    assert not masker.masks
    assert masker.rows(ROWS) == (ROWS, Counter())
    nothing = MaskSpec(detectors=frozenset(), fields=frozenset())
    assert not front(nothing).masks and front(nothing).rows(ROWS)[0] is ROWS


class _Codec:
    """A protocol whose values are UTF-8 text; column 2 is never read, column 1 holds
    no text, a derived value becomes `derived:` and its bytes."""

    def __init__(self) -> None:
        self.wrote: list[tuple[int, Any, Any]] = []

    def read(self, index: int, value: bytes) -> tuple[Any, str] | None:
        return None if index == 2 else (value.decode(), f"state {index}")

    def slot(self, index: int, state: str) -> Slot:
        assert state == f"state {index}"
        return fitting.typed(None) if index == 1 else fitting.TEXT

    def written(self, index: int, _state: str, read: Any, masked: Any) -> bytes:
        self.wrote.append((index, read, masked))
        return f"<{masked}>".encode()

    def derived(self, _index: int, value: bytes) -> bytes:
        return b"derived:" + value


def test_the_codec_reads_holds_and_writes_back() -> None:
    codec = _Codec()
    masker = RowMasker(MASKER, MaskSpec(derived=frozenset({"d"})), ["a", "b", "c", "d"], codec)
    rows, counts = masker.rows([[b"ann@example.com", b"bob@example.com", b"cy@example.com",
                                 b"x"], [b"plain", b"plain", None, None]])
    # Column 2 unread (its secret stays: the codec left it), column 1 NULL, column 0
    # written by the codec, column 3 derived; the unchanged values as they came.
    assert rows == [[b"<[REDACTED:EMAIL_ADDRESS]>", None, b"cy@example.com", b"derived:x"],
                    [b"plain", b"plain", None, None]]
    assert codec.wrote == [(0, "ann@example.com", "[REDACTED:EMAIL_ADDRESS]")]
    assert counts == Counter({"email": 2, "derived": 1})


def test_nothing_found_leaves_the_rows_as_they_came() -> None:
    rows: Rows = [[b"plain", b"1", b"2", b"3"]]
    out, counts = RowMasker(MASKER, MaskSpec(), ["a", "b", "c", "d"], _Codec()).rows(rows)
    assert out is rows and not counts


# Names that suggest a protected value; some are a field rule's or make a short number a
# postal code, which the probe refuses.
SUGGESTIVE = ["phone", "tel", "mobile", "zip", "postcode", "plz", "postal", "account",
              "acct", "card_id", "ssn_last4", "pin_hint", "iban_ok", "cvv_checked", "routing",
              "id", "dob_year", "passport_no", "nhs", "bsn", "aadhaar", "cpf", "amount",
              "balance"]


def test_every_short_integer_is_found_by_no_detector_under_any_name() -> None:
    """What the rows masker skips unscanned (`_INERT_DIGITS`): every integer of up to five
    digits, as text and as a number, signed, under each name its probe passes, masks to
    nothing; were a detector to find one, skipping would pass it in clear. Names that
    make a short number a postal code are the probe's to refuse."""
    spec = MaskSpec()
    kept = [name for name in SUGGESTIVE if rows_module._names_inert(MASKER, (name,), spec)]
    assert {"zip", "postcode"}.isdisjoint(kept) and len(kept) >= 15, kept
    every: list[Any] = [str(n) for n in range(100_000)]
    every += [f"-{n}" for n in range(1, 100_000, 7)] + list(range(-99_999, 100_000, 13))
    for names, values in ((kept[:4], every), (kept[4:], every[::11])):
        rows = [[value] * len(names) for value in values]
        _, counts = MASKER.mask_json({"columns": names, "rows": rows}, spec)
        assert counts == Counter(), names


@pytest.mark.parametrize("codec", ["postgres", "mysql"])
def test_a_result_of_short_integers_is_not_scanned_unless_a_name_asks(
        codec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-row result of small integers costs no scan (its fixed cost is most of a short
    result's masking); one under a field rule's name, a longer number, or text is scanned
    and masked as before."""
    scans: list[Any] = []
    real = MASKER.mask_json

    def counted(value: Any, spec: MaskSpec) -> Any:
        scans.append(value)
        return real(value, spec)

    monkeypatch.setattr(MASKER, "mask_json", counted)
    masked, counts = _masked(codec, ["aid", "abalance"], [INTEGER, INTEGER],
                             [[b"42", b"-17"], [b"99999", None]])
    assert masked == [[b"42", b"-17"], [b"99999", None]] and counts == Counter()
    probes = len(scans)  # the names asked once, at most
    assert probes <= 1
    _masked(codec, ["aid", "abalance"], [INTEGER, INTEGER], [[b"43", b"0"]])
    assert len(scans) == probes  # the names' answer is kept
    masked, counts = _masked(codec, ["cvv", "aid"], [INTEGER, INTEGER], [[b"123", b"1"]])
    assert counts["field:cvv"] == 1 and masked[0][0] != b"123"
    masked, counts = _masked(codec, ["aid"], [STRING], [[b"4111111111111111"]])
    assert counts["credit_card"] == 1
