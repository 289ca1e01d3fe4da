"""Whether a write's rows are bounded, read from its text alone (no database to ask).

A WHERE's shape says nothing: `WHERE id IS NOT NULL`, `WHERE name LIKE '%'`, `WHERE 'a' = 'a'`,
`WHERE id = 1 OR NOT false` all keep every row. So the rule is positive: a DELETE, UPDATE or
MERGE is bounded only when its condition can be shown to pick a bounded set of rows, by

- an equality of one of the written table's columns to a value that is the same for every
  row (a literal, a parameter, a cast of one): `id = 7`, `email = $1`, `id = '7'::int`;
  any column counts, not only key-named ones (see below);
- a list of at most MAX_VALUES such values: `id IN (1, 2, 3)`, `id = ANY(ARRAY[1, 2])`;
- an AND any of whose terms bounds, an OR every one of whose branches bounds (their values
  added up, at most MAX_VALUES), a NOT that pushed inward is one of these
  (`NOT (id <> 7)`), WHERE CURRENT OF (one row);
- a condition that is false for every row (`1 = 2`, `NULL`): it changes nothing;
- a LIMIT of at most MAX_LIMIT_ROWS, where the dialect honours one on writes (the reader
  says).

Everything else bounds nothing: ranges, LIKE, IS [NOT] NULL, NOT IN, subqueries (over the
same table or not), functions of columns, a column compared with another or itself, a
condition the same for every row that is not false, a parameter as the whole condition.

Any column's equality counts because a name says nothing of uniqueness: `customer_id = 7`
(a foreign key) may match thousands of rows and `email = $1` one; only the columns of the
written table count (`UPDATE t ... FROM u WHERE u.id = 1` changes every row of t). What
text alone cannot see — an equality on a column with few distinct values (`status = 'x'`)
— is for the database's own estimate to say where there is one to ask. Two exceptions are
known from the text: a boolean literal (a column of two values bounds nothing), and, where
the server compares a string with a number as numbers (MySQL: 'abc' = 0 is true), a zero or
a value the text does not show (a parameter, a cast: it may be 0).

Each back-end translates its tree (pglast's JSON, sqlglot's expressions) into the small
predicate language below; `write_bounded` is the one judgement both share.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Most distinct values an IN list (or an OR of equalities) may name and still bound a write.
MAX_VALUES = 100
# Largest LIMIT that bounds a write, where the dialect honours LIMIT on DELETE/UPDATE.
MAX_LIMIT_ROWS = 1000

Literal = bool | int | Decimal | str | None

# The predicate language's nodes are plain slotted classes, not frozen ones: a reader builds
# one per node of every write's condition, and frozen dataclasses take twice as long to make.


@dataclass(slots=True)
class Const:
    """A value the same for every row. `known`: a literal whose `value` is known (None is
    SQL's NULL); otherwise a parameter, a cast, a variable: one value, unknown here."""

    value: Literal = None
    known: bool = True


UNKNOWN_VALUE = Const(known=False)


@dataclass(slots=True)
class Col:
    """A column reference; `target`: one of the written table's columns."""

    target: bool


@dataclass(slots=True)
class Opaque:
    """Anything whose value may change from row to row and is not a plain column."""


OPAQUE = Opaque()
Term = Const | Col | Opaque


@dataclass(slots=True)
class Compare:
    """`left op right`; op is one of COMPARISONS, "not_distinct" or "distinct"."""

    op: str
    left: Term
    right: Term


@dataclass(slots=True)
class Member:
    """`subject IN (items)`, `subject = ANY(ARRAY[items])` (NOT IN is Not(Member))."""

    subject: Term
    items: tuple[Term, ...]


@dataclass(slots=True)
class Logic:
    """AND (`conjunction`) or OR of its terms."""

    conjunction: bool
    terms: tuple[Predicate, ...]


@dataclass(slots=True)
class Not:
    term: Predicate


@dataclass(slots=True)
class NullTest:
    """`subject IS NULL` (`is_null`) or `subject IS NOT NULL`."""

    subject: Term
    is_null: bool


@dataclass(slots=True)
class CurrentOf:
    """WHERE CURRENT OF a cursor: the one row it is on."""


Predicate = Compare | Member | Logic | Not | NullTest | CurrentOf | Term

_NEGATED = {"=": "<>", "<>": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">",
            "not_distinct": "distinct", "distinct": "not_distinct"}
COMPARISONS = frozenset({"=", "<>", "<", ">", "<=", ">="})
_EQUALITIES = frozenset({"=", "not_distinct"})


@dataclass(frozen=True, slots=True)
class Target:
    """How a reader resolves a column reference of a write to a Term.

    `names`: the qualifiers that name the written table (its alias if it has one, else its
    name with and without schema); `alone`: no other relation is in scope, so an unqualified
    column is the target's; `constants`: qualifiers of a source whose every column is one
    value per source row (MERGE ... USING (VALUES ...) s).
    """

    names: frozenset[tuple[str, ...]]
    alone: bool
    constants: frozenset[tuple[str, ...]] = frozenset()

    def column(self, qualifier: tuple[str, ...]) -> Term:
        if qualifier in self.constants:
            return UNKNOWN_VALUE
        return Col(qualifier in self.names if qualifier else self.alone)


def table_names(name: str, schema: str | None = None, catalog: str | None = None,
                alias: str | None = None) -> frozenset[tuple[str, ...]]:
    """The qualifiers a column of this table may carry: the alias hides the name."""
    if alias:
        return frozenset({(alias,)})
    names: set[tuple[str, ...]] = {(name,)}
    if schema:
        names.add((schema, name))
        if catalog:
            names.add((catalog, schema, name))
    return frozenset(names)


def write_bounded(where: Predicate | None, limit: int | None = None,
                  numeric_strings: bool = False, rows: int = 1) -> bool:
    """Whether a write whose condition is `where` (None: it has none) changes a bounded set
    of rows; `limit`: a LIMIT the dialect honours on this write; `numeric_strings`: the
    server compares a string with a number as numbers; `rows`: how many times the condition
    is applied (a MERGE from a list of constant rows)."""
    if limit is not None and 0 <= limit <= MAX_LIMIT_ROWS:
        return True
    if where is None:
        return False
    values = _Reach(numeric_strings).of(where, negated=False)
    return values is not None and values * rows <= MAX_VALUES


class _Reach:
    """How many values of a column a predicate can select: 0 (no row), n, or None
    (unbounded). Negation is pushed inward as it goes."""

    __slots__ = ("_numeric_strings",)

    def __init__(self, numeric_strings: bool) -> None:
        self._numeric_strings = numeric_strings

    def of(self, p: Predicate, negated: bool) -> int | None:
        if isinstance(p, Logic):
            found = [self.of(term, negated) for term in p.terms]
            if p.conjunction != negated:  # AND, or NOT of an OR
                bounded = [n for n in found if n is not None]
                return min(bounded) if bounded else None
            return None if None in found else sum(n for n in found if n is not None)
        if isinstance(p, Not):
            return self.of(p.term, not negated)
        if isinstance(p, Compare):
            return self._compare(_NEGATED[p.op] if negated else p.op, p.left, p.right)
        if isinstance(p, Member):
            return None if negated else self._member(p)
        if isinstance(p, NullTest):
            if isinstance(p.subject, Const) and p.subject.known:
                return _rows(truth=(p.subject.value is None) == (p.is_null != negated))
            return None
        if isinstance(p, CurrentOf):
            return None if negated else 1
        if isinstance(p, Const) and p.known:
            truth = _truth(p.value)
            return _rows(None if truth is None else truth != negated)
        return None  # a column, a parameter or an expression as the whole condition

    def _compare(self, op: str, left: Term, right: Term) -> int | None:
        if isinstance(left, Const) and isinstance(right, Const):
            return _rows(_fold(op, left, right))
        if op not in _EQUALITIES:
            return None
        if isinstance(right, Col):
            left, right = right, left
        if not (isinstance(left, Col) and left.target and isinstance(right, Const)):
            return None
        if right.known and right.value is None:
            # IS NOT DISTINCT FROM NULL is IS NULL, and so is `= NULL` where PostgreSQL's
            # transform_null_equals is on.
            return None
        return 1 if self._selective(right) else None

    def _member(self, p: Member) -> int | None:
        if not (isinstance(p.subject, Col) and p.subject.target):
            return None
        values: set[Literal] = set()
        unknown = 0
        for item in p.items:
            if not isinstance(item, Const) or not self._selective(item):
                return None
            if not item.known:
                unknown += 1
            elif item.value is not None:
                values.add(item.value)
        return len(values) + unknown

    def _selective(self, value: Const) -> bool:
        """Whether equality to `value` can pick few of a column's values: not a boolean
        (two values), nor, where strings compare with numbers as numbers, a zero or a value
        not known here (a parameter may be 0)."""
        if isinstance(value.value, bool):
            return False
        if not self._numeric_strings:
            return True
        return value.known and _number(value.value) != 0


def _rows(truth: bool | None) -> int | None:
    """A condition the same for every row: no row if it is false or NULL, every row if it
    is true or not known."""
    return 0 if truth is False or truth is None else None


# What a condition that cannot be folded counts as: possibly true, so it may keep every row.
_UNKNOWN_TRUTH = True


def _truth(value: Literal) -> bool | None:
    """A literal as a condition: NULL, a boolean, a number (MySQL's, SQLite's `WHERE 0`)."""
    if value is None or isinstance(value, bool):
        return value
    number = _number(value)
    return _UNKNOWN_TRUTH if number is None else number != 0


def _fold(op: str, left: Const, right: Const) -> bool | None:
    """`left op right` for two constants: True, False or None (NULL); possibly true where
    it cannot be known here."""
    if not (left.known and right.known):
        return _UNKNOWN_TRUTH
    a, b = left.value, right.value
    if op in ("not_distinct", "distinct"):
        if a is None or b is None:
            return (a is b) == (op == "not_distinct")
        op = "=" if op == "not_distinct" else "<>"
    if a is None or b is None:
        # PostgreSQL with transform_null_equals on reads `x = NULL` as `x IS NULL`.
        return _UNKNOWN_TRUTH if op == "=" else None
    if isinstance(a, str) and isinstance(b, str):
        # Collations may make different strings equal ('a' = 'A' in MySQL) and order them
        # any way: only the same string folds.
        return (op in ("=", "<=", ">=")) if a == b else _UNKNOWN_TRUTH
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return _UNKNOWN_TRUTH  # a string and a number: each dialect casts its own way
    return {"=": x == y, "<>": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def _number(value: Literal) -> Decimal | None:
    """A number literal's value (not a boolean's, not a string's)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    return Decimal(value)


def number(text: str) -> Const:
    """A numeric literal as the readers give it (text): its value, or an unknown constant
    for a spelling Decimal does not read (`0x1F`)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return UNKNOWN_VALUE
    return Const(value) if value.is_finite() else UNKNOWN_VALUE
