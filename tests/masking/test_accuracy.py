"""Accuracy against seeded Faker data in five locales, and against a false-positive corpus.

Recall is measured per detector on entities Faker generates (Luhn-valid cards, mod-97
IBANs, valid SSNs, e-mail addresses, phone numbers, IPv4 and IPv6), each in a sentence.
The checksum-validated ones (cards, IBANs, SSNs) must reach 0.99, and so must e-mail
and IP; phone formats are open-ended, so its floor is lower and its figure is reported.
Precision is measured on the same findings plus a corpus of look-alikes that are none
of these: order ids, timestamps, UUIDs, 9-digit numbers, Luhn-failing 16-digit numbers,
versions, git SHAs, base64 blobs.
"""

from __future__ import annotations

import base64
import random
import uuid
from functools import cache

import pytest
from faker import Faker

from extproc.masking.catalog import DETECTORS
from extproc.masking.detectors import Text, scan

LOCALES = ("en_US", "de_DE", "fr_FR", "en_GB", "nl_NL")
PER_LOCALE = 200
TEMPLATES = ("Please use {} for this.", "value: {}\n", '{{"field": "{}"}}', "({})")
FLOORS = {"credit_card": 0.99, "iban": 0.99, "us_ssn": 0.99, "email": 0.99,
          "ip_address": 0.99, "phone": 0.85}


def _entities() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name in FLOORS}
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(2026)
        for _ in range(PER_LOCALE):
            out["credit_card"].append(fake.credit_card_number())
            out["iban"].append(fake.iban())
            out["email"].append(fake.email())
            out["phone"].append(fake.phone_number())
            out["ip_address"].append(fake.ipv4() if len(out["ip_address"]) % 2 else fake.ipv6())
            if locale == "en_US":
                out["us_ssn"].append(fake.ssn())
    return out


def _look_alikes() -> dict[str, list[str]]:
    rnd = random.Random(2026)
    n = 300

    def luhn_fails(digits: str) -> bool:
        from extproc.masking.checks import luhn

        return not luhn(digits)

    sixteen = (str(rnd.randrange(10**15, 10**16)) for _ in range(10 * n))
    return {
        "order ids": [f"ORD-{rnd.randrange(10**9):09d}" if i % 2 else f"#{rnd.randrange(10**7)}"
                      for i in range(n)],
        "timestamps": [f"2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T"
                       f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00Z" for _ in range(n)],
        "epoch millis": [str(rnd.randrange(1_600_000_000_000, 1_800_000_000_000))
                         for _ in range(n)],
        "uuids": [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(n)],
        "9-digit numbers": [str(rnd.randrange(10**8, 10**9)) for _ in range(n)],
        "16-digit, not Luhn": [d for d in sixteen if luhn_fails(d)][:n],
        "versions": [f"{'v' if i % 3 == 0 else 'version ' if i % 3 == 1 else ''}"
                     f"{rnd.randint(0, 30)}.{rnd.randint(0, 300)}.{rnd.randint(0, 9999)}"
                     for i in range(n)],
        "git shas": [f"{rnd.getrandbits(160):040x}" for _ in range(n)],
        "base64 blobs": [base64.b64encode(rnd.randbytes(rnd.randint(20, 90))).decode()
                         for _ in range(n)],
        "sk- words": [rnd.choice(["skeleton", "task-force", "desk-lamp", "risk-free", "ask-me"])
                      + f" {rnd.randint(1, 99)}" for _ in range(n)],
        "amounts": [f"${rnd.randint(1, 10**6):,}.{rnd.randint(0, 99):02d}" for _ in range(n)],
    }


def _findings(text: str) -> list[tuple[int, int, str]]:
    raw = text.encode()
    return [(s, e, d.name) for s, e, d in scan(Text(raw), DETECTORS)]


@cache
def recall_by_detector() -> dict[str, tuple[int, int]]:
    """Detector -> (entities found by it, entities)."""
    out = {}
    for name, values in _entities().items():
        hits = 0
        for i, value in enumerate(values):
            text = TEMPLATES[i % len(TEMPLATES)].format(value)
            start = text.encode().index(value.encode())
            end = start + len(value.encode())
            hits += any(d == name and s <= start and end <= e for s, e, d in _findings(text))
        out[name] = (hits, len(values))
    return out


@cache
def false_positives() -> dict[str, tuple[int, int]]:
    """Look-alike kind -> (texts with any finding, texts)."""
    return {
        kind: (sum(bool(_findings(f"ref {v} ok")) for v in values), len(values))
        for kind, values in _look_alikes().items()
    }


@pytest.mark.parametrize("detector", sorted(FLOORS))
def test_recall(detector: str) -> None:
    hits, total = recall_by_detector()[detector]
    recall = hits / total
    print(f"{detector}: recall {recall:.4f} ({hits}/{total})")
    assert recall >= FLOORS[detector], f"{detector}: recall {recall:.4f} ({hits}/{total})"


@pytest.mark.parametrize("kind", sorted(_look_alikes()))
def test_look_alikes_are_left_alone(kind: str) -> None:
    flagged, total = false_positives()[kind]
    print(f"{kind}: {flagged}/{total} flagged")
    assert flagged / total <= 0.01, f"{kind}: {flagged}/{total} flagged"


def test_precision() -> None:
    true_positives = sum(hits for hits, _ in recall_by_detector().values())
    false = sum(flagged for flagged, _ in false_positives().values())
    precision = true_positives / (true_positives + false)
    print(f"precision {precision:.4f} ({true_positives} true, {false} false)")
    assert precision >= 0.99
