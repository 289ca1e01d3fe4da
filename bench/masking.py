"""Masking speed and accuracy: tollgate's detectors against Presidio's recognizers, in one run.

Run from the repository root: `python -m bench.masking [--presidio-set PATH]` (needs the
`bench` extra: presidio-analyzer, spaCy; Faker comes with the test extra).

Speed, as since the first version of this bench (so that ratios compare across runs):
~1 MB of JSON customer records from Faker in five locales (every 25th record carries a
card number, an IBAN or a credential) and a 2 KB text like an LLM answer, against
Presidio's predefined English recognizers on a blank spaCy pipeline (tokenizer only, no
model to download; its e-mail recognizer's public-suffix list is the copy tldextract
ships, not a download).

Accuracy, on bench/labelled.py's set (personal data in thirteen locales and four
carriers, vendor secrets, hard negatives) and, given `--presidio-set`, on
presidio-evaluator's public synthetic set (github.com/microsoft/presidio-research,
data/synth_dataset_v2.json, MIT; read from where it was saved, never downloaded here):
recall per type, hard negatives flagged, precision, and throughput, scored by
bench/scoring.py. For accuracy Presidio gets every recognizer it has for the set's types,
enabled for English whatever its default (the national identifiers of the thirteen
locales; phone numbers of all thirteen regions), so that each type is compared with the
best Presidio can do with patterns.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faker import Faker

from bench.labelled import LOCALES, NATIONAL_IDS, PERSONAL, Sample, Span, labelled_set
from bench.scoring import Finder, Score, score, tollgate_finder, vendor
from extproc.masking import ALL_DETECTORS, Masker, MaskSpec

SPEED_LOCALES = ("en_US", "de_DE", "fr_FR", "en_GB", "nl_NL")
SHARED = ("CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
SECRETS_ONLY = MaskSpec(detectors=ALL_DETECTORS - {"email", "phone", "ip_address"})

# Presidio's entities -> the labelled set's categories.
PRESIDIO_CATEGORIES = {
    "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban", "IP_ADDRESS": "ip_address",
    **dict.fromkeys(("US_SSN", "UK_NINO", "DE_TAX_ID", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE",
                     "PL_PESEL", "IN_AADHAAR", "SE_PERSONNUMMER", "FI_PERSONAL_IDENTITY_CODE"),
                   "national_id"),
}  # only the set's types: asked for others (US_ITIN, IN_PAN...) Presidio flags more
# Recognizers of those national identifiers that Presidio does not enable for English.
_NATIONAL_RECOGNIZERS = ("UkNinoRecognizer", "DeTaxIdRecognizer", "EsNifRecognizer",
                         "EsNieRecognizer", "ItFiscalCodeRecognizer", "PlPeselRecognizer",
                         "InAadhaarRecognizer", "SePersonnummerRecognizer",
                         "FiPersonalIdentityCodeRecognizer")
# presidio-evaluator's entity types -> the labelled set's kinds (the others are not scored).
EVALUATOR_KINDS = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone",
                   "CREDIT_CARD": "credit_card", "IBAN_CODE": "iban", "IP_ADDRESS": "ip_address",
                   "US_SSN": "us_ssn"}


def customer_records(size: int = 1_000_000, seed: int = 7) -> dict[str, Any]:
    """About `size` bytes of JSON: a page of customer records, some carrying secrets."""
    fake = Faker(list(SPEED_LOCALES))
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


def presidio() -> Any:
    """Presidio's AnalyzerEngine on a blank spaCy pipeline: no model, no download."""
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    # The bundled snapshot (an instance stands in for the module's cached function).
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # type: ignore[assignment]

    class BlankSpacy(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment]  # typed None

    engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers()
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])




def presidio_full() -> Any:
    """`presidio()` with every recognizer of the labelled set's types, for English."""
    from presidio_analyzer import predefined_recognizers
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    analyzer = presidio()
    registry = analyzer.registry
    registry.remove_recognizer("PhoneRecognizer")
    regions = sorted({loc.code.split("_")[1] for loc in LOCALES})
    registry.add_recognizer(PhoneRecognizer(supported_regions=regions))
    for name in _NATIONAL_RECOGNIZERS:
        registry.add_recognizer(getattr(predefined_recognizers, name)(supported_language="en"))
    return analyzer


def presidio_finder(analyzer: Any) -> Finder:
    entities = sorted(PRESIDIO_CATEGORIES)

    def find(text: str) -> list[tuple[int, int, str]]:
        return [(r.start, r.end, PRESIDIO_CATEGORIES[r.entity_type])
                for r in analyzer.analyze(text, language="en", entities=entities)]

    return find


def presidio_synthetic(path: Path) -> list[Sample]:
    """presidio-evaluator's synthetic samples, their spans of the shared types labelled."""
    return [
        Sample(item["full_text"], tuple(
            Span(s["start_position"], s["end_position"], EVALUATOR_KINDS[s["entity_type"]])
            for s in item["spans"] if s["entity_type"] in EVALUATOR_KINDS),
            "presidio-evaluator", path.name)
        for item in json.loads(path.read_text())
    ]


def _row(label: str, ours: float | str, theirs: float | str = "", extra: str = "") -> str:
    cells = [f"{v:>10.3f}" if isinstance(v, float) else f"{v:>10}" for v in (ours, theirs)]
    return f"{label:44}{''.join(cells)}{extra:>10}"


def _recall_rows(ours: Score, theirs: Score, kinds: list[str], indent: str = "  ") -> list[str]:
    return [_row(indent + vendor(k), ours.recall[k].rate, theirs.recall[k].rate,
                 str(ours.recall[k].total)) for k in kinds if ours.recall[k].total]


def accuracy_table(ours: dict[str, Score], theirs: dict[str, Score]) -> list[str]:
    """The accuracy half of the table: per type, per national id, per vendor, negatives."""
    p, q = ours["personal"], theirs["personal"]
    lines = [_row("recall, labelled set", "tollgate", "Presidio", "labels")]
    lines += [_row(f"  {cat}", p.category(cat).rate, q.category(cat).rate,
                   str(p.category(cat).total)) for cat in (*PERSONAL, "national_id")]
    lines += _recall_rows(p, q, list(NATIONAL_IDS), "    ")
    s, t = ours["secrets"], theirs["secrets"]
    lines.append(_row("  secrets (vendor formats)", s.category("secret").rate,
                      t.category("secret").rate, str(s.category("secret").total)))
    lines += _recall_rows(s, t, sorted(s.recall), "    ")
    n, m = ours["negatives"], theirs["negatives"]
    lines.append(_row("hard negatives flagged (share of samples)", n.false_positive_rate,
                      m.false_positive_rate, str(sum(x.total for x in n.flagged.values()))))
    lines += [_row(f"  {kind}", n.flagged[kind].rate, m.flagged[kind].rate)
              for kind in sorted(n.flagged) if n.flagged[kind].hits or m.flagged[kind].hits]
    both = [Score(true_findings=sum(x.true_findings for x in side.values()),
                  false_findings=sum(x.false_findings for x in side.values()))
            for side in (ours, theirs)]
    lines.append(_row("precision (findings on a label)", both[0].precision, both[1].precision))
    return lines


def evaluator_table(ours: Score, theirs: Score, name: str) -> list[str]:
    lines = [_row(f"recall, {name}", "tollgate", "Presidio", "labels")]
    lines += _recall_rows(ours, theirs, sorted(ours.recall))
    lines.append(_row("precision (findings on a label)", ours.precision, theirs.precision))
    lines.append(_row("  false findings", str(ours.false_findings), str(theirs.false_findings)))
    return lines


def speed_table(analyzer: Any) -> list[str]:
    """Today's speed rows: the same inputs and Presidio set-up as every earlier run."""
    masker = Masker(b"bench-hmac-key-0123456789abcdef")
    spec = MaskSpec()
    doc = customer_records()
    doc_bytes = len(json.dumps(doc).encode())
    text = llm_answer()
    json_all = median_seconds(lambda: masker.mask_json(doc, spec), 5)
    json_secrets = median_seconds(lambda: masker.mask_json(doc, SECRETS_ONLY), 5)
    text_ours = median_seconds(lambda: masker.mask_text(text, spec), 200)
    text_theirs = median_seconds(lambda: analyzer.analyze(text, language="en",
                                                          entities=list(SHARED)), 10)
    # Presidio reads text, not JSON values: give it the JSON text of the first 64 KB.
    sample = json.dumps(doc["customers"][: max(1, len(doc["customers"]) * 65_536 // doc_bytes)])
    sample_theirs = median_seconds(lambda: analyzer.analyze(sample, language="en",
                                                            entities=list(SHARED)), 1)
    ours_mb, theirs_mb = doc_bytes / json_all / 1e6, len(sample) / sample_theirs / 1e6
    return [
        _row("speed", "tollgate", "Presidio", "ratio"),
        _row("  mixed JSON, all detectors (MB/s)", ours_mb, theirs_mb,
             f"{ours_mb / theirs_mb:.0f}x"),
        _row("  mixed JSON, secrets only (MB/s)", doc_bytes / json_secrets / 1e6),
        _row("  2 KB text, median (µs)", f"{text_ours * 1e6:.0f}", f"{text_theirs * 1e6:.0f}",
             f"{text_theirs / text_ours:.0f}x"),
        f"  (JSON: {doc_bytes / 1e6:.2f} MB, {len(doc['customers'])} records; Presidio on its "
        f"first {len(sample) / 1000:.0f} KB as text; one core)",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--presidio-set", type=Path, metavar="PATH",
                        help="presidio-evaluator's synth_dataset_v2.json, saved beforehand")
    args = parser.parse_args(argv)
    analyzer = presidio()
    lines = speed_table(analyzer)

    full = presidio_full()
    finders = {"tollgate": tollgate_finder(), "Presidio": presidio_finder(full)}
    labelled = labelled_set()
    groups = {"personal": labelled.personal, "secrets": labelled.secrets,
              "negatives": labelled.negatives}
    ours, theirs = ({name: score(samples, finders[who]) for name, samples in groups.items()}
                    for who in finders)
    size = sum(x.size for x in ours.values())
    ours_s, theirs_s = (sum(x.seconds for x in side.values()) for side in (ours, theirs))
    lines.append(_row("  labelled set, every type (MB/s)", size / ours_s / 1e6,
                      size / theirs_s / 1e6, f"{theirs_s / ours_s:.0f}x"))
    lines += ["", *accuracy_table(ours, theirs)]
    if args.presidio_set:
        samples = presidio_synthetic(args.presidio_set)
        lines += ["", *evaluator_table(score(samples, finders["tollgate"]),
                                       score(samples, finders["Presidio"]),
                                       f"{args.presidio_set.name} ({len(samples)} samples)")]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
