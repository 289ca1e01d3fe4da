"""Scoring a masker on labelled samples: recall per kind, false positives, precision.

A masker is seen as a `Finder`: text in, findings out, each a character span and the
category of what it found (bench/labelled.py's categories). A label counts as found
when findings of its own category cover every letter and digit of it: a finding that
stops short of a phone number's `+` still masks it, one that leaves digits out does not,
and a phone detector's finding on a national identifier does not count for either (the
set judges types; a masker that only masked everything would still fail precision).

tollgate is judged by its detectors, each run on its own (as `scan` does before merging
overlaps), read from `catalog.DETECTORS` when the finder is made, so that detectors added
to the catalog are judged without a change here (but people's, whose kinds the set does
not label). Key-name rules (`MaskSpec.fields`) are
left out: they mask a value by its key, whatever it is, and would make any figure here
a figure of the key names the set happens to use.

The travel set (bench/travel.py) judges the whole masker instead (`masker_finder`: what
`Masker.analyze` finds with the default spec, key-name rules included), scored with
`any_kind`: a label counts as found when findings of any kind cover it, and a sample is
*masked clean* when every label of it is (`Score.clean`): what leaves the gateway is what
matters there, not which detector caught it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bench.labelled import SECRET, Sample, Span, category
from extproc.masking import (
    Masker,
    MaskSpec,
    catalog,
    detectors,
    keys,
    national_ids,
    ner,
    people,
    phones,
)
from extproc.masking.detectors import Detector, Text

Finding = tuple[int, int, str]  # start, end (characters), category
Finder = Callable[[str], list[Finding]]

# tollgate's entity names of the shared personal-data categories.
_BY_ENTITY = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit_card",
              "IBAN_CODE": "iban", "IP_ADDRESS": "ip_address"}


def tollgate_category(d: Detector) -> str:
    """The category a detector's findings count in: its family module's, else its
    entity's; whatever else it finds is a secret (keys, tokens, passwords, JWTs)."""
    if d in phones.DETECTORS:
        return "phone"
    if d in national_ids.DETECTORS:
        return "national_id"
    if d in keys.DETECTORS:
        return "secret"
    return _BY_ENTITY.get(d.entity, "secret")


# The set labels no names, addresses or birth dates (they are its unlabelled context):
# people's detectors are left out of the default finder, not counted as false findings.
_LABELLED = tuple(d for d in catalog.DETECTORS if d not in people.DETECTORS)


def tollgate_finder(only: Iterable[Detector] | None = None) -> Finder:
    """Findings of each detector (`only` these, or the catalog's as it is now), unmerged.

    Gates are asked through the module (`detectors.gate_passes`), so that the tests'
    check of every gate (tests/masking/conftest.py) covers the labelled set too.
    """
    chosen = [(d, tollgate_category(d)) for d in (_LABELLED if only is None else only)]

    def find(text: str) -> list[Finding]:
        raw = text.encode("utf-8", "surrogatepass")
        t = Text(raw)
        spans = [(t.to_source(s), t.to_source(e), cat) for d, cat in chosen
                 if detectors.gate_passes(d, t) for s, e in d.find(t)]
        if text.isascii():
            return spans
        chars = [len(raw[:pos].decode("utf-8", "ignore")) for pos in range(len(raw) + 1)]
        return [(chars[s], chars[e], cat) for s, e, cat in spans]

    return find


def masker_finder(spec: MaskSpec | None = None) -> Finder:
    """The whole masker's findings (`Masker.analyze`, merged, key-name rules included), each
    as its detector's name (`field` for a key-name rule)."""
    masker, chosen = Masker(b"x" * 32), MaskSpec() if spec is None else spec
    return lambda text: masker.analyze(text, chosen)


def model_finder() -> Finder:
    """`masker_finder` and what the masking model (ner.py, both kinds, its budget lifted:
    the bench measures what it finds, bench/ner.py what it costs) finds besides."""
    model = dataclasses.replace(ner.load(), budget_ms=60_000)
    detectors = masker_finder()

    def find(text: str) -> list[Finding]:
        spans, _ = model.find([text], ner.KINDS)
        return detectors(text) + [(s, e, d.name) for s, e, d in spans[0]]

    return find


def covered(text: str, span: Span, findings: list[Finding], any_kind: bool = False) -> bool:
    """Whether findings of the label's category (with `any_kind`, of any) cover every
    letter and digit of it."""
    want = category(span.kind)
    mine = [(s, e) for s, e, cat in findings
            if (any_kind or cat == want) and s < span.end and e > span.start]
    return all(any(s <= i < e for s, e in mine)
               for i in range(span.start, span.end) if text[i].isalnum())


@dataclass
class Tally:
    hits: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1


@dataclass
class Score:
    """What one finder did on a set: recall per label kind and per origin, samples masked
    clean (every label found) and hard negatives flagged, both per origin, findings true
    (on a label) and false, and the time it took on how many bytes."""

    recall: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    origin_recall: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    clean: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    flagged: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    true_findings: int = 0
    false_findings: int = 0
    seconds: float = 0.0
    size: int = 0

    def category(self, name: str) -> Tally:
        """Recall over every kind of a category (national_id, secret, or a PERSONAL kind)."""
        return self.total(t for kind, t in self.recall.items() if category(kind) == name)

    @staticmethod
    def total(tallies: Iterable[Tally]) -> Tally:
        """Tallies added up: every origin's clean samples, every kind's labels."""
        out = Tally()
        for t in tallies:
            out.hits += t.hits
            out.total += t.total
        return out

    @property
    def false_positive_rate(self) -> float:
        """Share of hard-negative samples with any finding."""
        return sum(t.hits for t in self.flagged.values()) / max(
            1, sum(t.total for t in self.flagged.values()))

    @property
    def precision(self) -> float:
        return self.true_findings / max(1, self.true_findings + self.false_findings)

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds else 0.0


def score(samples: Iterable[Sample], finder: Finder, into: Score | None = None,
          any_kind: bool = False) -> Score:
    """Runs `finder` on each sample and tallies it (into `into`, to add sets together);
    with `any_kind`, a finding of any category covers a label (see `covered`)."""
    out = Score() if into is None else into
    for sample in samples:
        start = time.perf_counter()
        findings = finder(sample.text)
        out.seconds += time.perf_counter() - start
        out.size += len(sample.text.encode("utf-8", "surrogatepass"))
        found = [covered(sample.text, span, findings, any_kind) for span in sample.spans]
        for span, hit in zip(sample.spans, found, strict=True):
            out.recall[span.kind].add(hit)
            out.origin_recall[sample.origin].add(hit)
        if sample.spans:
            out.clean[sample.origin].add(all(found))
        else:
            out.flagged[sample.origin].add(bool(findings))
        true = sum(any(s < span.end and e > span.start for span in sample.spans)
                   for s, e, _ in findings)
        out.true_findings += true
        out.false_findings += len(findings) - true
    return out


def vendor(kind: str) -> str:
    return kind.removeprefix(SECRET)
