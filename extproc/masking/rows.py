"""A result's rows masked by column, whatever the database's protocol: the policy's
detectors on the values, its field rules on the column names (`ssn`, `email` ... as on
JSON keys), its derived columns masked whole.

The rule both database fronts follow (`extproc/postgres/results.py`,
`extproc/mysql/results.py`). A column the mask names `derived` (computed by the SQL from
a protected column) is replaced whole, by its name as the result describes it, and never
read. Every other value is read as its column travels, and all of them masked at once as
JSON `{"columns": names, "rows": values}`. A value the masker changed is written back in
its column's type (fitting.py): its masked text fitted to the column's length where the
type holds text, else NULL, or where the column holds no NULL the type's stand-in (`0`,
`2000-01-01`, the nil UUID ...), which every client decodes and the column takes back,
where `[REDACTED:...]` in an integer column or 17 characters in a `varchar(16)` would not.

What a value is read as, what its column holds (a `Slot`), how a masked value is written
and what a derived column's value becomes are the protocol's: its `ColumnCodec`. The
record's view of the rows is `extproc/codecs/rows.py`'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

from extproc.codecs.rows import Rows
from extproc.masking.fitting import Slot
from extproc.masking.masker import DERIVED_ALL, Masker, MaskSpec, normalise_field

# What a codec keeps of a value it read, to write it back (None where it needs nothing).
State = TypeVar("State")

# An inert value: an integer of at most this many digits, read as text or as a number. No
# detector finds one on its own; under a name that says what it is (`zip`: a postal code)
# one may, which `_names_inert` asks with a value of each length. A result of only inert
# values and NULLs, under column names the mask leaves them alone in, is not scanned: a
# scan's fixed cost (~30 us) is most of what masking a short result costs.
# tests/masking/test_rows.py masks every inert value under each of many suggestive names
# the probe passes.
_INERT_DIGITS = 5
_INERT_BOUND = 10 ** _INERT_DIGITS
_PROBES = ("x", *("123456789"[:n] for n in range(1, _INERT_DIGITS + 1)))
# Whether a mask leaves a result's column names and their cells alone, by (masker, names,
# spec): results of one query come back with the same names.
_NAMES_KEPT = 1024


class ColumnCodec(Protocol[State]):
    """How one result's values travel in a protocol, each by its column's index (the
    arguments are positional: a codec names those it ignores as it likes)."""

    def read(self, index: int, value: bytes, /) -> tuple[Any, State] | None:
        """The value as the masker scans it (a JSON value), and what writing it back
        takes; None: left as it is, unread. Raises where the value cannot be read."""
        ...

    def slot(self, index: int, state: State, /) -> Slot:
        """What the value's column holds in place of a masked value."""
        ...

    def written(self, index: int, state: State, read: Any, masked: Any, /) -> bytes | None:
        """A value read as `read` and masked as `masked`, whose slot holds text, in its
        column's type, fitted to it (`fitting.fit`)."""
        ...

    def derived(self, index: int, value: bytes, /) -> bytes | None:
        """What a derived column's value becomes (None: NULL)."""
        ...


class RowMasker(Generic[State]):
    """One result's masking under `spec`: the columns `names`, their values read and
    written by `codec`."""

    def __init__(self, masker: Masker, spec: MaskSpec | None, names: list[str],
                 codec: ColumnCodec[State]) -> None:
        self._masker, self._names, self._codec = masker, names, codec
        derived = spec.derived if spec is not None else frozenset()
        # Masked whole here; the rest by the spec without them (the table's own names
        # would otherwise fall under a derived `*`).
        self._derived = {i for i, name in enumerate(names)
                         if DERIVED_ALL in derived or normalise_field(name) in derived}
        self._spec = replace(spec, derived=frozenset()) if spec and derived else spec
        self.masks = spec is not None and bool(spec.detectors or spec.fields or self._derived)
        self._names_inert: bool | None = None  # asked once a result is all inert values

    def rows(self, rows: Rows) -> tuple[Rows, Counter[str]]:
        """The rows masked, and what was masked by detector (`derived`: the values of
        derived columns)."""
        if not self.masks or not rows:
            return rows, Counter()
        assert self._spec is not None
        derived, codec = self._derived, self._codec
        hidden = sum(row[i] is not None for row in rows for i in derived if i < len(row))
        if hidden:
            rows = [[codec.derived(i, v) if i in derived and v is not None else v
                     for i, v in enumerate(row)] for row in rows]
        cells = self._cells(rows)
        read = [[None if c is None else c[0] for c in row] for row in cells]
        if not hidden and self._inert(read):
            return rows, Counter()
        masked, counts = self._masker.mask_json({"columns": self._names, "rows": read},
                                                self._spec)
        if hidden:
            counts["derived"] += hidden
        if not counts:
            return rows, counts
        out: Rows = []
        for row, before, after in zip(rows, cells, masked["rows"], strict=True):
            new = list(row)
            for i, (cell, value) in enumerate(zip(before, after, strict=True)):
                if cell is not None and cell[0] != value:
                    slot = codec.slot(i, cell[1])
                    new[i] = (codec.written(i, cell[1], cell[0], value) if slot.text
                              else slot.stand_in)
            out.append(new)
        return out, counts

    def values(self, rows: Rows) -> list[list[Any]]:
        """The rows' values as the masker reads them, derived columns' left out: what
        the flow fingerprints of rows as they leave (activity/flow.py)."""
        return [[None if c is None else c[0] for c in row] for row in self._cells(rows)]

    def _cells(self, rows: Rows) -> list[list[tuple[Any, State] | None]]:
        """Each value read by the codec (None: NULL, a derived column's, or unread)."""
        derived, codec = self._derived, self._codec
        return [[None if v is None or i in derived else codec.read(i, v)
                 for i, v in enumerate(row)] for row in rows]

    def _inert(self, read: list[list[Any]]) -> bool:
        """Whether masking `read` would change nothing: every value inert (`_INERT_DIGITS`)
        and the mask leaving the column names, and a cell under each, alone."""
        if not all(_inert(value) for row in read for value in row):
            return False
        if self._names_inert is None:
            assert self._spec is not None
            self._names_inert = _names_inert(self._masker, tuple(self._names), self._spec)
        return self._names_inert


def _inert(value: Any) -> bool:
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is int:
        return -_INERT_BOUND < value < _INERT_BOUND
    if kind is str:
        digits = value[1:] if value[:1] == "-" else value
        return 0 < len(digits) <= _INERT_DIGITS and digits.isascii() and digits.isdigit()
    return False


@lru_cache(maxsize=_NAMES_KEPT)
def _names_inert(masker: Masker, names: tuple[str, ...], spec: MaskSpec) -> bool:
    """Whether `spec` leaves `names`, and an inert value of each length under each,
    alone: no name is under a field rule (which masks any value), found by a detector
    itself, or makes a short number a finding."""
    rows = [[probe] * len(names) for probe in _PROBES]
    _, counts = masker.mask_json({"columns": list(names), "rows": rows}, spec)
    return not counts
