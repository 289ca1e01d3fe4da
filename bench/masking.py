"""Masking cost and recall: tollgate's masker against Presidio's pattern recognizers.

Run from the repository root: `python -m bench.masking` (needs the `bench` extra:
presidio-analyzer, spaCy, Faker).

Inputs, all seeded: ~1 MB of JSON customer records from Faker in five locales (names,
e-mail addresses, phone numbers, addresses, timestamps, UUIDs, order ids; every 25th
record carries a card number, an IBAN or a credential), and a 2 KB text like an LLM
answer with a few secrets in it. Presidio runs with a blank spaCy pipeline (tokenizer
only, no model to download) and its predefined recognizers for the six entity types
both sides know; its e-mail recognizer's public-suffix list is the copy tldextract
ships, not a download. Recall is over the same Faker entities, each in a sentence.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from faker import Faker

from extproc.masking import ALL_DETECTORS, Masker, MaskSpec
from extproc.masking.catalog import DETECTORS
from extproc.masking.detectors import Text, scan

LOCALES = ("en_US", "de_DE", "fr_FR", "en_GB", "nl_NL")
SHARED = {  # tollgate detector -> Presidio entity
    "credit_card": "CREDIT_CARD", "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER",
    "iban": "IBAN_CODE", "us_ssn": "US_SSN", "ip_address": "IP_ADDRESS",
}
SECRETS_ONLY = MaskSpec(detectors=ALL_DETECTORS - {"email", "phone", "ip_address"})


def customer_records(size: int = 1_000_000, seed: int = 7) -> dict[str, Any]:
    """About `size` bytes of JSON: a page of customer records, some carrying secrets."""
    fake = Faker(list(LOCALES))
    fake.seed_instance(seed)
    rnd = random.Random(seed)
    records: list[dict[str, Any]] = []
    length = 0
    while length < size:
        i = len(records)
        record: dict[str, Any] = {
            "id": 100_000 + i, "order_id": f"ORD-{rnd.randrange(10**9):09d}",
            "uuid": fake.uuid4(), "name": fake.name(), "email": fake.email(),
            "phone": fake.phone_number(), "address": fake.address(),
            "created_at": fake.date_time().isoformat() + "Z",
            "amount": round(rnd.random() * 999, 2), "tags": [fake.word(), fake.word()],
            "active": rnd.random() < 0.8,
            "notes": fake.sentence(nb_words=12),
        }
        if i % 25 == 0:
            record["payment"] = {"card": fake.credit_card_number(), "iban": fake.iban()}
        if i % 25 == 5:
            record["api"] = {"token": f"ghp_{fake.pystr(36, 36)}", "password": fake.password()}
        if i % 25 == 10:
            record["notes"] += f" AWS key AKIA{fake.pystr(16, 16).upper()} rotated"
        records.append(record)
        length += len(json.dumps(record))
    return {"customers": records, "page": 1}


def llm_answer(seed: int = 7) -> str:
    """A 2 KB answer: prose, a config snippet, a few identifiers and one secret of each kind."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    parts = [
        "Sure! Here is the customer summary you asked for.",
        f"The account belongs to {fake.name()} ({fake.email()}), phone {fake.phone_number()}.",
        f"Their card on file is {fake.credit_card_number()} and the SSN is {fake.ssn()}.",
        f"Refunds go to {fake.iban()}. The last login came from {fake.ipv4()}.",
        "To reproduce, set these in your environment:",
        "DATABASE_URL=postgres://app:Sup3rS3cret@db.internal:5432/prod",
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ]
    while len("\n".join(parts)) < 2048:
        parts.append(fake.paragraph(nb_sentences=3))
    return "\n".join(parts)[:2048]


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def entities(per_locale: int = 100, seed: int = 2026) -> dict[str, list[str]]:
    """Faker entities per tollgate detector name (SSNs are en_US only)."""
    out: dict[str, list[str]] = {name: [] for name in SHARED}
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for i in range(per_locale):
            out["credit_card"].append(fake.credit_card_number())
            out["email"].append(fake.email())
            out["phone"].append(fake.phone_number())
            out["iban"].append(fake.iban())
            out["ip_address"].append(fake.ipv4() if i % 2 else fake.ipv6())
            if locale == "en_US":
                out["us_ssn"].extend((fake.ssn(), fake.ssn()))
    return out


def recall(found: Callable[[str, str], list[tuple[int, int]]]) -> dict[str, float]:
    """Share of entities that `found(text, detector)` covers, each in a sentence."""
    out = {}
    for name, values in entities().items():
        hits = 0
        for value in values:
            text = f"Please check {value} for this customer."
            start = text.index(value)
            hits += any(s <= start and start + len(value) <= e for s, e in found(text, name))
        out[name] = hits / len(values)
    return out


def tollgate_found(text: str, detector: str) -> list[tuple[int, int]]:
    raw = text.encode()
    return [(s, e) for s, e, d in scan(Text(raw), DETECTORS) if d.name == detector]


def presidio() -> Any:
    """Presidio's AnalyzerEngine on a blank spaCy pipeline: no model, no download."""
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # the bundled snapshot

    class BlankSpacy(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers()
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


def main() -> None:
    masker = Masker(b"bench-hmac-key-0123456789abcdef")
    spec = MaskSpec()
    doc = customer_records()
    doc_bytes = len(json.dumps(doc).encode())
    text = llm_answer()
    analyzer = presidio()
    entity_types = list(SHARED.values())

    json_all = median_seconds(lambda: masker.mask_json(doc, spec), 5)
    json_secrets = median_seconds(lambda: masker.mask_json(doc, SECRETS_ONLY), 5)
    text_ours = median_seconds(lambda: masker.mask_text(text, spec), 200)
    text_theirs = median_seconds(lambda: analyzer.analyze(text, language="en",
                                                          entities=entity_types), 10)
    # Presidio reads text, not JSON values: give it the JSON text of the first 64 KB.
    sample = json.dumps(doc["customers"][: max(1, len(doc["customers"]) * 65_536 // doc_bytes)])
    sample_theirs = median_seconds(lambda: analyzer.analyze(sample, language="en",
                                                            entities=entity_types), 1)

    def presidio_found(value: str, detector: str) -> list[tuple[int, int]]:
        results = analyzer.analyze(value, language="en", entities=[SHARED[detector]])
        return [(r.start, r.end) for r in results]

    ours, theirs = recall(tollgate_found), recall(presidio_found)

    mb = 1_000_000
    print(f"{'':36}{'tollgate':>14}{'Presidio':>14}{'ratio':>9}")
    print(f"{'mixed JSON, all detectors (MB/s)':36}{doc_bytes / json_all / mb:>14.1f}"
          f"{len(sample) / sample_theirs / mb:>14.3f}"
          f"{(doc_bytes / json_all) / (len(sample) / sample_theirs):>8.0f}x")
    print(f"{'mixed JSON, secrets only (MB/s)':36}{doc_bytes / json_secrets / mb:>14.1f}")
    print(f"{'2 KB text, median (µs)':36}{text_ours * 1e6:>14.0f}{text_theirs * 1e6:>14.0f}"
          f"{text_theirs / text_ours:>8.0f}x")
    for name in SHARED:
        print(f"{'recall ' + name:36}{ours[name]:>14.3f}{theirs[name]:>14.3f}")
    print(f"(JSON: {doc_bytes / mb:.2f} MB, {len(doc['customers'])} records; Presidio on its "
          f"first {len(sample) / 1000:.0f} KB as text; one core)")


if __name__ == "__main__":
    main()
