"""A database server's error text as a client under a mask may read it: one rule for the
PostgreSQL and the MySQL fronts.

A server's message can quote what its statement read (`invalid input syntax for type
integer: "<ssn>"`, `Duplicate entry '<ssn>' for key`), and the row masker never sees it:
the value may be derived (`ssn || 'x'`), which no detector knows. So where a mask
applies, a text is kept only in a form the front knows, each value it quotes kept where
the statement's own text holds it (the client wrote it) or where it is a name the server
vouches for, masked whole (`[REDACTED:DERIVED]`) where not; a text of no known form is
withheld. What a form is, is the front's: MySQL's message templates per error code,
PostgreSQL's quoting (`extproc/mysql/results.py`, `extproc/postgres/results.py`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from extproc.masking.masker import MaskSpec
from extproc.masking.strategies import DERIVED

WITHHELD = ("tollgate: the server's message is withheld (it may quote values the "
            "statement read, which this session's mask hides)")


def masks(spec: MaskSpec | None) -> bool:
    """Whether a mask hides anything."""
    return spec is not None and bool(spec.detectors or spec.fields or spec.derived)


def _value(value: str, statement: str, names: Collection[str]) -> str:
    return value if value in statement or value in names else DERIVED


def kept(text: str, statement: str, forms: Iterable[re.Pattern[str]], *,
         quote: str | None = None, names: Collection[str] = ()) -> str | None:
    """`text` with the values it quotes kept or masked, None where it must be withheld.

    A form matches the text whole, each of its groups a value. Failing every form, with
    `quote` (a quote character), the text's quoted parts are its values: a part the
    statement or `names` holds is kept, and from the first that is not, everything to
    the last quote is one value (a value may hold the quote character itself); a text
    with no quoted part, or an odd number of quotes, is withheld."""
    for form in forms:
        found = form.fullmatch(text)
        if found is None:
            continue
        out, at = [], 0
        for group in range(1, form.groups + 1):
            start, end = found.span(group)
            if start < 0:
                continue  # an optional part the text does not have
            out += [text[at:start], _value(text[start:end], statement, names)]
            at = end
        return "".join(out) + text[at:]
    if quote is None:
        return None
    parts = text.split(quote)
    if len(parts) < 3 or len(parts) % 2 == 0:
        return None
    for i in range(1, len(parts), 2):
        if _value(parts[i], statement, names) != parts[i]:
            return quote.join(parts[:i]) + quote + DERIVED + quote + parts[-1]
    return text
