"""National ids beyond the SSN: found where their checksum holds, and, where a checksum
alone would let too many ordinary numbers through, only after a cue (a word before the
number, its JSON key or its CSV column's header).

Valid numbers come from Faker where it has them (codice fiscale, NIR, PESEL,
personnummer, SIN, BSN, DNI/NIE, HETU, CPF, AHV: independent implementations of the
checksums) and otherwise from the issuing rules (NINO, Steuer-IdNr, TFN, CPR, Aadhaar:
Faker's are mostly not Verhoeff-valid). Each is also tried with its check character
changed, which no checksum here accepts.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import string
import uuid
from collections.abc import Callable
from functools import cache

import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec, id_checks
from extproc.masking.catalog import BY_NAME
from extproc.masking.detectors import Detector, Text, scan
from extproc.masking.national_ids import DETECTORS, PREFILTER, column_name
from tests.masking.conftest import found


def _alone(detector: str) -> MaskSpec:
    """Only `detector`: where a card's Luhn digit also holds (a 12-digit Aadhaar in a
    Maestro range, a NIR starting with 2), `scan` gives the finding to the first detector."""
    return MaskSpec(detectors=frozenset({detector}), fields=frozenset())


NEW = tuple(d.name for d in DETECTORS if d.name != "us_ssn")


@cache
def _faker(locale: str) -> Faker:
    return Faker(locale)


def _fake(locale: str, seed: int) -> Faker:
    fake = _faker(locale)
    fake.seed_instance(seed)
    return fake


def _nino(seed: int) -> str:
    rnd = random.Random(seed)
    while not id_checks.uk_nino(code := "".join(rnd.choices(string.ascii_uppercase, k=2))
                                + f"{rnd.randrange(10**6):06d}" + rnd.choice("ABCD")):
        pass
    return f"{code[:2]} {code[2:4]} {code[4:6]} {code[6:8]} {code[8]}"


def _mod_11_10_check(body: str) -> str:
    product = 10
    for d in body:
        product = ((int(d) + product) % 10 or 10) * 2 % 11
    return str((11 - product) % 10)


def _de_tax_id(seed: int) -> str:
    """Ten digits with one of them twice and one missing (the rule since 2016), then the
    ISO 7064 MOD 11,10 check digit."""
    rnd = random.Random(seed)
    while True:
        body = rnd.sample(string.digits, 9)
        body.insert(rnd.randrange(10), rnd.choice(body))
        if body[0] != "0":
            return "".join(body) + _mod_11_10_check("".join(body))


def _tfn(seed: int) -> str:
    rnd = random.Random(seed)
    while True:
        body = f"{rnd.randrange(10**8):08d}"
        check = sum(int(d) * w for d, w in zip(body, (1, 4, 3, 7, 5, 8, 6, 9), strict=True)) % 11
        if check < 10:  # 10 x check == -sum (mod 11), and 10 == -1
            return f"{body[:3]} {body[3:6]} {body[6:]}{check}"


def _cpr(seed: int) -> str:
    rnd = random.Random(seed)
    day = datetime.date(1940, 1, 1) + datetime.timedelta(days=rnd.randrange(30_000))
    return f"{day:%d%m%y}-{rnd.randrange(10**4):04d}"


def _aadhaar(seed: int) -> str:
    """Faker's `aadhaar_id` is mostly not Verhoeff-valid: the check digit is the one of ten
    that the (separately tested) Verhoeff check accepts."""
    rnd = random.Random(seed)
    body = f"{rnd.randrange(2 * 10**10, 10**11)}"
    value = next(body + d for d in string.digits if id_checks.verhoeff(body + d))
    return f"{value[:4]} {value[4:8]} {value[8:]}"


def _personnummer(seed: int) -> str:
    """Faker's, and every other one with the century first (Faker's are 18 to 90 years
    old: born 1936 to 2008)."""
    value = _fake("sv_SE", seed).ssn()
    return value if seed % 2 else ("20" if value[:2] <= "08" else "19") + value


def _cpf(seed: int) -> str:
    """Faker's, printed (`000.000.000-00`) or bare."""
    value = _fake("pt_BR", seed).cpf()
    return value if seed % 2 else value.replace(".", "").replace("-", "")


def _ahv(seed: int) -> str:
    """Faker's, dotted as printed (`756.0000.0000.00`), bare or in spaced groups."""
    value = _fake("de_CH", seed).ssn()
    return (value, value.replace(".", ""), value.replace(".", " "))[seed % 3]


# Detector -> (a valid id as commonly written, from a seed).
VALID: dict[str, Callable[[int], str]] = {
    "uk_nino": _nino,
    "in_aadhaar": _aadhaar,
    "de_tax_id": _de_tax_id,
    "nl_bsn": lambda seed: _fake("nl_NL", seed).ssn(),
    "es_nif": lambda seed: (_fake("es_ES", seed).nie() if seed % 2 else _fake("es_ES", seed).nif()),
    "it_fiscal_code": lambda seed: _fake("it_IT", seed).ssn(),
    "fr_nir": lambda seed: _fake("fr_FR", seed).ssn(),
    "pl_pesel": lambda seed: _fake("pl_PL", seed).ssn(),
    "se_personnummer": _personnummer,
    "dk_cpr": _cpr,
    "ca_sin": lambda seed: _fake("en_CA", seed).ssn(),
    "au_tfn": _tfn,
    "fi_hetu": lambda seed: _fake("fi_FI", seed).ssn(),
    "br_cpf": _cpf,
    "ch_ahv": _ahv,
}
# Detector -> (a word before it, a JSON key, a CSV header).
CUES: dict[str, tuple[str, str, str]] = {
    "uk_nino": ("National Insurance number:", "nino", "NI Number"),
    "in_aadhaar": ("Aadhaar no.", "aadhaar_number", "Aadhar"),
    "de_tax_id": ("Steuer-IdNr.", "steuerId", "Steuerliche Identifikationsnummer"),
    "nl_bsn": ("BSN:", "burgerservicenummer", "bsn"),
    "es_nif": ("DNI", "nif", "NIE"),
    "it_fiscal_code": ("codice fiscale", "cf", "Codice Fiscale"),
    "fr_nir": ("numéro de sécurité sociale", "nir", "NIR"),
    "pl_pesel": ("nr PESEL", "pesel", "PESEL"),
    "se_personnummer": ("personnummer", "personnr", "Personnummer"),
    "dk_cpr": ("CPR-nr.", "cpr", "CPR nummer"),
    "ca_sin": ("Social Insurance Number", "sin", "SIN"),
    "au_tfn": ("Tax File Number", "tfn", "TFN"),
    "fi_hetu": ("henkilötunnus", "hetu", "Henkilötunnus"),
    "br_cpf": ("CPF:", "cpf", "CPF"),
    "ch_ahv": ("AHV-Nr.", "ahv_nr", "AVS"),
}
# Detector -> which of its forms (as VALID writes them) are found with no cue: grouped or
# lettered ones, printed CPFs, dotted AHV numbers, and HETUs with a letter in them.
WITHOUT_CUE: dict[str, Callable[[str], bool]] = {
    **dict.fromkeys(("uk_nino", "es_nif", "it_fiscal_code", "fr_nir"), lambda _v: True),
    "fi_hetu": lambda value: not value.replace("-", "").isdigit(),
    "br_cpf": lambda value: "." in value,
    "ch_ahv": lambda value: "." in value,
}
SEEDS = st.integers(0, 2**32 - 1)
FAKER_SETTINGS = settings(max_examples=30, deadline=None)  # a locale's first Faker takes ~1 s


def _wrong(value: str) -> str:
    """`value` with its last character (the check) changed."""
    last = value[-1]
    pool = string.digits if last.isdigit() else string.ascii_uppercase
    return value[:-1] + pool[(pool.index(last) + 1) % len(pool)]


@pytest.mark.parametrize("detector", list(VALID))
@FAKER_SETTINGS
@given(seed=SEEDS)
def test_found_after_a_word(detector: str, seed: int) -> None:
    value = VALID[detector](seed)
    assert found(detector, f"{CUES[detector][0]} {value}.") == [value]


@pytest.mark.parametrize("detector", list(VALID))
@FAKER_SETTINGS
@given(seed=SEEDS)
def test_found_as_a_json_key_s_value(masker: Masker, detector: str, seed: int) -> None:
    value = VALID[detector](seed)
    masked, counts = masker.mask_json({"id": 7, CUES[detector][1]: value}, _alone(detector))
    assert masked[CUES[detector][1]] == f"[REDACTED:{BY_NAME[detector].entity}]"
    assert counts == {detector: 1}


@pytest.mark.parametrize("detector", list(VALID))
@pytest.mark.parametrize("sep", [",", "\t", ";"])
def test_found_in_a_csv_column(masker: Masker, detector: str, sep: str) -> None:
    values = [VALID[detector](seed) for seed in range(3)]
    rows = [sep.join(["id", "name", CUES[detector][2], "city"])] + [
        sep.join([str(i), "Ann Example", f'"{v}"' if i % 2 else v, "Lyon"])
        for i, v in enumerate(values)]
    masked, counts = masker.mask_text("\n".join(rows), _alone(detector), delimiter=sep)
    assert counts == {detector: 3}
    assert not any(v in masked for v in values)


@pytest.mark.parametrize("detector", list(VALID))
@FAKER_SETTINGS
@given(seed=SEEDS)
def test_a_cue_is_needed_where_the_checksum_is_weak(detector: str, seed: int) -> None:
    value = VALID[detector](seed)
    expected = [value] if WITHOUT_CUE.get(detector, lambda _v: False)(value) else []
    assert found(detector, f"ref {value} ok") == expected


@pytest.mark.parametrize("detector", list(VALID))
@FAKER_SETTINGS
@given(seed=SEEDS)
def test_a_wrong_check_character_is_no_id(detector: str, seed: int) -> None:
    value = VALID[detector](seed)
    if detector == "dk_cpr":  # no check digit: a day no month has
        value = "32" + value[2:]
    elif detector == "uk_nino":  # no check character: a suffix never issued
        value = value[:-1] + "E"
    assert found(detector, f"{CUES[detector][0]} {_wrong(value)}") == []


@pytest.mark.parametrize(
    ("detector", "text", "expected"),
    [
        ("uk_nino", "NI: QQ 12 34 56 C", []),  # Q is never a first letter
        ("uk_nino", "nino AO123456A", []),  # O never second
        ("uk_nino", "nino GB123456A", []),  # unallocated prefix
        ("uk_nino", "AB 12 34 56 E", []),  # suffix A-D only
        ("uk_nino", "AB 123456 C and AB 12 34 56 D", ["AB 123456 C", "AB 12 34 56 D"]),
        ("uk_nino", "part AB123456C", []),  # compact: a cue
        ("uk_nino", "nino ab123456c", []),  # lower case
        ("uk_nino", "AB 12 34 56 C7", []),
        ("in_aadhaar", "aadhaar: 1234 5678 9012", []),  # starts with 1: never issued
        ("in_aadhaar", "aadhaar card 4111 1111 1111 1111", []),  # four groups: a card's
        ("es_nif", "12345678Z y X1234567L y 12345678-Z", ["12345678Z", "X1234567L", "12345678-Z"]),
        ("es_nif", "12345678 Z", []),  # a space is no separator
        ("es_nif", "12345678z", []),
        ("es_nif", "A1234567L", []),  # not X, Y or Z
        ("es_nif", "112345678Z", []),
        ("it_fiscal_code", "RSSMRA85T10A562S", ["RSSMRA85T10A562S"]),
        ("it_fiscal_code", "RSSMRA85T10A56NH", ["RSSMRA85T10A56NH"]),  # omocodia: 2 -> N
        ("it_fiscal_code", "RSSMRA85Z10A562S", []),  # Z is no month
        ("it_fiscal_code", "RSSMRA85T99A562S", []),  # no day 99
        ("it_fiscal_code", "rssmra85t10a562s", []),
        ("fr_nir", "NIR 2 82 08 19 398 814 09", ["2 82 08 19 398 814 09"]),
        ("fr_nir", "282081939881409", ["282081939881409"]),
        ("fr_nir", "1 85 05 2A 006 084 35 et 185052A00608435",
         ["1 85 05 2A 006 084 35", "185052A00608435"]),  # Corsica
        ("fr_nir", "582081939881409", []),  # no sex 5
        ("fr_nir", "282151939881409", []),  # no month 15
        ("de_tax_id", "Steuer-ID: 86 095 742 719", ["86 095 742 719"]),
        ("de_tax_id", "IdNr 86/095/742/719", ["86/095/742/719"]),
        ("de_tax_id", "IdNr 36554266806", []),  # two digits repeated
        ("de_tax_id", "IdNr 95173336842", []),  # a digit three times in a row
        ("nl_bsn", "BSN 1112.22.333 / 111 222 333", ["1112.22.333", "111 222 333"]),
        ("nl_bsn", "BSN 000000000", []),
        ("se_personnummer", "personnummer 811218+9876", ["811218+9876"]),
        ("se_personnummer", "personnummer 811278-9873", ["811278-9873"]),  # samordningsnummer
        ("se_personnummer", "personnummer 811218 9876", []),
        ("ca_sin", "SIN: 046 454 286", []),  # 0 first: fictitious
        ("ca_sin", "using 130 692 544", []),  # "sin" inside a word
        ("ca_sin", "sin: 130-692-544", ["130-692-544"]),
        ("au_tfn", "TFN: 123456782 and 876 543 210", ["123456782", "876 543 210"]),
        ("pl_pesel", "PESEL: 44051401359", ["44051401359"]),
        ("pl_pesel", "PESEL: 44053201359", []),  # May 32nd
        ("dk_cpr", "CPR 010190-1234 and 3002901234", ["010190-1234"]),  # February 30th
        ("fi_hetu", "131052-308T, 010101A123N, 150875+226S", ["131052-308T", "010101A123N",
                                                             "150875+226S"]),
        ("fi_hetu", "built 240115-0935", []),  # digits and a dash: a compact timestamp too
        ("fi_hetu", "hetu 240115-0935", ["240115-0935"]),
        ("fi_hetu", "131052-308t", []),  # lower case
        ("fi_hetu", "131052 308T", []),  # a space is no century sign
        ("fi_hetu", "131052-001Y", []),  # individual numbers start at 002
        ("fi_hetu", "321052-308T", []),  # no day 32
        ("br_cpf", "CPF 529.982.247-25", ["529.982.247-25"]),
        ("br_cpf", "ref 529.982.247-25 and 52998224725", ["529.982.247-25"]),  # bare: a cue
        ("br_cpf", "cpf: 52998224725 / 529982247-25", ["52998224725", "529982247-25"]),
        ("br_cpf", "529.982.247.25 529/982/247-25", []),  # printed with a dash only
        ("br_cpf", "CPF 111.111.111-11", []),  # one digit repeated: never issued
        ("ch_ahv", "756.9217.0769.85", ["756.9217.0769.85"]),
        ("ch_ahv", "EAN 7569217076985", []),  # a Swiss product's barcode starts 756 too
        ("ch_ahv", "AHV-Nr. 7569217076985, AVS 756 9217 0769 85",
         ["7569217076985", "756 9217 0769 85"]),
        ("ch_ahv", "757.9217.0769.81", []),  # not Switzerland's 756
        ("nl_bsn", "national_id=111222333", ["111222333"]),  # an English key of any id
        ("nl_bsn", '{"id_number": "111222333"}', ["111222333"]),
        ("nl_bsn", "Tax ID: 111 222 333", ["111 222 333"]),
        ("nl_bsn", "user_id=111222333 order_id: 111222333 id: 111222333", []),  # not `id`
        ("uk_nino", "personal identity number AB123456C", ["AB123456C"]),
        ("pl_pesel", "taxpayer 44051401359", ["44051401359"]),
    ],
)
def test_rules_and_forms(detector: str, text: str, expected: list[str]) -> None:
    assert found(detector, text) == expected


def _look_alikes() -> dict[str, list[str]]:
    """Numbers that are none of these ids, as they come, with no cue."""
    rnd = random.Random(2026)
    n = 300
    stamps = [datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=rnd.randrange(10**8))
              for _ in range(n)]
    return {
        "epoch seconds and millis": [str(int(s.timestamp()) * (1000 if i % 2 else 1))
                                     for i, s in enumerate(stamps)],
        "compact timestamps": [f"{s:%Y%m%d-%H%M}" if i % 2 else f"{s:%y%m%d-%H%M}"
                               for i, s in enumerate(stamps)],
        "dates and times": [f"{s:%Y-%m-%d %H:%M:%S}" for s in stamps],
        "order ids": [str(rnd.randrange(10 ** (k - 1), 10**k)) for k in (9, 10, 11, 12) * (n // 4)],
        "grouped numbers": [" ".join(str(rnd.randrange(100, 1000)) for _ in range(3))
                            if i % 2 else " ".join(f"{rnd.randrange(10**4):04d}" for _ in range(3))
                            for i in range(n)],
        "phone numbers": [rnd.choice(["+91 ", "0", "+86 1", "+44 7", "+46 70"])
                          + f"{rnd.randrange(10**9):09d}" for _ in range(n)],
        "15 digits": [str(rnd.randrange(10**14, 10**15)) for _ in range(n)],
        "uuids and hex": [str(uuid.UUID(int=rnd.getrandbits(128))).upper() if i % 2
                          else f"{rnd.getrandbits(64):016X}" for i in range(n)],
        "skus": ["".join(rnd.choices(string.ascii_uppercase, k=2)) + f"{rnd.randrange(10**6):06d}"
                 + rnd.choice("ABCD") for _ in range(n)],
        "swiss barcodes": [_ean13(f"76{rnd.randrange(10**10):010d}") for _ in range(n)],
        "dotted numbers": [".".join(f"{rnd.randrange(10**k):0{k}d}" for k in (3, 3, 3))
                           + f"-{rnd.randrange(100):02d}" if i % 2 else
                           f"{rnd.randrange(100, 1000)}.{rnd.randrange(10**4):04d}."
                           f"{rnd.randrange(10**4):04d}.{rnd.randrange(100):02d}"
                           for i in range(n)],
    }


def _ean13(body: str) -> str:
    return body + str(-sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10)


@pytest.mark.parametrize("kind", list(_look_alikes()))
def test_look_alikes_are_left_alone(kind: str) -> None:
    detectors = [BY_NAME[name] for name in NEW]
    values = _look_alikes()[kind]
    flagged = [v for v in values if scan(Text(f"ref {v} ok".encode()), detectors)]
    assert len(flagged) <= len(values) // 100, flagged


def test_a_column_header_is_found_only_for_a_whole_cell() -> None:
    raw = b"id;BSN;x\n1;111222333;y\n2;a 111222333;z\n"
    cell = raw.index(b"111222333")
    assert column_name(Text(raw), cell, cell + 9) == b"bsn"
    inner = raw.index(b"111222333", cell + 1)
    assert column_name(Text(raw), inner, inner + 9) is None
    assert column_name(Text(b"111222333;bsn\n"), 0, 9) is None  # no header above
    # The first cell of its line, under an empty header line (hypothesis found it: an
    # IndexError, as csv reads an empty line as no cell at all).
    assert column_name(Text(b"\n111222333,"), 1, 10) is None
    assert column_name(Text(b"bsn,x\n111222333,"), 6, 15) == b"bsn"


@pytest.mark.parametrize(
    ("check", "valid", "invalid"),
    [
        (id_checks.verhoeff, ["2363", "0", "123451"], ["2364", "123456"]),
        (id_checks.mod_11_10, ["86095742719", "36574261809"], ["86095742718"]),
        (id_checks.de_tax_id, ["47036892816", "65929970489", "57549285017", "25768131411"],
         ["07036892816", "12345678903"]),
        (id_checks.nl_bsn, ["111222333", "123456782"], ["111222334", "000000000"]),
        (id_checks.es_nif, ["12345678Z", "X1234567L", "Y1234567X", "Z1234567R"],
         ["12345678A", "W1234567L"]),
        (id_checks.pl_pesel, ["44051401359", "02270803624"], ["44051401358", "44051401350"]),
        (id_checks.au_tfn, ["123456782", "876543210"], ["123456789"]),
        (id_checks.us_itin, ["912701234", "950654321"], ["812701234", "912691234"]),
        # DVV's example; the same with the 2023 century signs Y (1900s) and B (2000s).
        (id_checks.fi_hetu, ["131052-308T", "131052Y308T", "010101B123N"],
         ["131052-308U", "131052G308T", "310252-308T"]),
        (id_checks.br_cpf, ["52998224725", "11144477735"], ["52998224724", "00000000000"]),
        # The Central Compensation Office's example.
        (id_checks.ch_ahv, ["7569217076985"], ["7569217076984", "7579217076985"]),
    ],
)
def test_published_examples(check: Callable[[str], bool], valid: list[str],
                            invalid: list[str]) -> None:
    assert all(check(v) for v in valid) and not any(check(v) for v in invalid)


_PIECES = st.sampled_from([
    "BSN", "bsn:", "Sofi-nummer", "PESEL", "personnummer", "Person Nr", "CPR-nr.", "SIN:",
    "sin", "nas=", "Social Insurance", "TFN", "Tax File No", "tin:", "Steuer-ID", "IdNr",
    "Aadhaar", "UID No", "NI number", "NINO", "using", "Burger Service Nummer", "\x01", "\x00",
    ",", ";", "\t", "\n", " ", '"', "-", "111222333", "111 222 333", "86 095 742 719",
    "86095742719", "44051401359", "811218-9876", "010190-1234", "130 692 544", "123 456 782",
    "2345 6789 0124", "AB123456C", "AB 12 34 56 C", "12345678Z", "RSSMRA85T10A562S",
    "282081939881409", "1 85 05 2A 006 084 35", "henkilötunnus", "HETU", "131052-308T",
    "240115-0935", "CPF", "529.982.247-25", "52998224725", "AHV", "avs:",
    "756.9217.0769.85", "7569217076985", "id_number", "National ID", "Tax-Id", "identity",
    "taxpayer", "user_id", "SSN", "078-05-1120", "078 05 1120", "078.05.1120", "912-70-1234"])


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=12))
def test_gates_hold_for_any_mix_of_cues_and_numbers(pieces: list[str]) -> None:
    """The prefilter's stems and shapes decide every gate and the family's verdict:
    conftest runs each finder they refuse, and fails where it finds anything."""
    text = "".join(pieces)
    for d in DETECTORS:
        found(d.name, text)
    scan(Text(text.encode()), DETECTORS)


def test_a_cell_far_below_its_header_has_its_column_as_cue() -> None:
    rows = ["name,national_id,city"] + [f"Ann {i},pending,Lyon" for i in range(300)]
    text = "\n".join([*rows, "Bo,111222333,Oslo", "Cy,111222333 x,Oslo"])
    assert found("nl_bsn", text) == ["111222333"]  # the whole cell only


def _counted(d: Detector, calls: list[str], family: Callable[[Text], frozenset[str]]
             ) -> Detector:
    def gate(t: Text) -> bool:
        calls.append(d.name)
        return d.gate is None or d.gate(t)
    return dataclasses.replace(d, gate=gate, family=family)


@pytest.mark.parametrize(("text", "asked"), [
    ("no digits at all", set()),
    ("order 111222333 shipped", {"us_ssn"}),  # a run of 9, and no cue of the others
    ("BSN 111222333, CPF 529.982.247-25", {"us_ssn", "nl_bsn", "br_cpf"}),
])
def test_a_family_is_asked_once_and_spares_the_gates_it_rules_out(text: str,
                                                                  asked: set[str]) -> None:
    families: list[Text] = []

    def family(t: Text) -> frozenset[str]:
        families.append(t)
        return PREFILTER.family(t)

    gates: list[str] = []
    members = [_counted(d, gates, family) for d in DETECTORS]
    findings = scan(Text(text.encode()), members)
    assert len(families) == 1
    assert set(gates) == asked and len(gates) == len(asked)
    assert {d.name for _, _, d in findings} <= asked


def test_a_family_that_rules_out_a_finding_member_fails_the_tests() -> None:
    """conftest's check of families is live: a verdict that hides a finding is caught."""
    wrong = dataclasses.replace(BY_NAME["nl_bsn"], family=lambda _t: frozenset())
    with pytest.raises(AssertionError, match="nl_bsn's family refused"):
        scan(Text(b"BSN 111222333"), [wrong])
