"""Where many literals occur in a text, read from the one pass (prefilter.py).

The vendor key rules (vendor_rules.py) each name a few keywords, and a rule's regular
expression runs only at or around where one of its keywords occurs; with ~200 rules,
looking for each keyword with `bytes.find` would cost ~300 passes over every text
(~1-3 µs each on 2 KB). Registered with the one Hyperscan pass, they cost a share of
it, and it reports every occurrence, which the rules, the key-like names of
generic_secrets.py and the AWS detectors then read instead of looking again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from extproc.masking.detectors import HitGate, Text
from extproc.masking.prefilter import PASS

Positions = dict[bytes, list[int]]


class Literals:
    """A set of literals (ASCII, matched case-insensitively), registered with the pass.

    `positions` is memoised in `Text.memo` under `name`, so that every detector whose
    gate or finder asks reads the pass's result once per text.
    """

    def __init__(self, name: str, words: Iterable[bytes]) -> None:
        self.name = name
        self.words: tuple[bytes, ...] = tuple(sorted({w.lower() for w in words}))
        self._ids = {PASS.literal(w, caseless=True): w for w in self.words}

    def gate(self, words: frozenset[bytes]) -> HitGate:
        """Whether one of `words` (some of this set's) occurs in a text: read from the
        pass's ids, without building `positions`."""
        return HitGate(frozenset(i for i, word in self._ids.items() if word in words))

    def positions(self, t: Text) -> Positions:
        """Each literal occurring in `t` (its ASCII fold; lower case) -> where each of its
        occurrences starts, in order."""
        memo = t.memo.get(self.name)
        if memo is None:
            ids = self._ids
            memo = t.memo[self.name] = {
                word: [end - len(word) for end in ends] for i, ends in t.hits.items()
                if (word := ids.get(i)) is not None}
        return cast("Positions", memo)
