"""The whole masker (detectors and key-name rules, the default spec) on bench/travel.py's
set of where data travels, so that a regression fails.

A sample is masked clean when findings of any kind cover every letter and digit of every
label in it (bench/scoring.py); a hard negative is flagged when anything is found in it.
Each floor is the issue's goal or today's figure rounded down, whichever is higher; the
comment beside it is Presidio's figure on the same samples (`python -m bench.masking
--travel-only`, presidio-analyzer 2.2.366: its default recognizers, with spaCy's small
English model, and with every country recognizer it has).
"""

from __future__ import annotations

from functools import cache

import pytest

from bench.scoring import Score, masker_finder, score
from bench.travel import travel_set

# Share of samples masked clean, per class.
CLEAN_FLOORS: dict[str, float] = {
    "header": 0.98,  # Presidio 0.000, with spaCy 0.042
    "url": 0.95,  # Presidio 0.841, with spaCy 0.852
    "secret": 0.97,  # Presidio 0.056, with spaCy 0.136
    "national_id": 0.93,  # Presidio with its country recognizers 0.845
    "personal": 0.993,  # Presidio with its country recognizers 0.993
    "people_structured": 0.95,  # Presidio 0.163, with spaCy 0.203
    "csv_locale": 0.80,  # Presidio 0.000, with spaCy 0.008
}
# Hard negatives flagged: the ceiling (Presidio 0.549, with spaCy 0.720).
NEGATIVES_CEILING = 0.002


@cache
def scores() -> dict[str, Score]:
    finder = masker_finder()
    return {cls: score(samples, finder, any_kind=True) for cls, samples in travel_set().items()}


def clean(s: Score) -> float:
    return Score.total(s.clean.values()).rate


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "floor"), sorted(CLEAN_FLOORS.items()))
def test_each_class_is_masked_clean_at_least_as_often_as_its_floor(cls: str, floor: float
                                                                   ) -> None:
    assert clean(scores()[cls]) >= floor


def test_every_secret_kind_is_masked_clean_in_nearly_every_sample() -> None:
    kinds = scores()["secret"].clean
    low = {kind: tally.rate for kind, tally in kinds.items() if tally.rate < 0.94}
    assert not low


def test_hard_negatives_stay_clean() -> None:
    negatives = scores()["negative"]
    assert negatives.false_positive_rate <= NEGATIVES_CEILING, {
        kind: tally.rate for kind, tally in negatives.flagged.items() if tally.hits}
