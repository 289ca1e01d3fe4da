"""National ids beyond the SSN: found where their checksum holds, and, where a checksum
alone would let too many ordinary numbers through, only after a cue (a word before the
number, its JSON key or its CSV column's header) or printed as the id is (its own
separators) with nothing saying it is something else; ids with no check character by
their strict format, after a cue.

Valid numbers come from Faker where it has them (codice fiscale, NIR, PESEL,
personnummer, SIN, BSN, DNI/NIE, HETU, CPF, AHV, Thai ids, partite IVA, Italian and US
passports, CIE: independent implementations of the checksums and formats) and otherwise
from the issuing rules (NINO, Steuer-IdNr, TFN, CPR, Aadhaar: Faker's are mostly not
Verhoeff-valid). Each with a check character is also tried with it changed, which no
checksum here accepts; each with none, malformed or with no cue.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import random
import string
import uuid
from collections.abc import Callable
from functools import cache

import pytest
from faker import Faker
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec, id_checks
from extproc.masking.catalog import BY_NAME
from extproc.masking.checks import luhn
from extproc.masking.detectors import Detector, Text, digits, scan
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


def _grouped(value: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    """`value` in groups of `sizes`, as its id is printed."""
    ends = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return sep.join(value[a:b] for a, b in itertools.pairwise(ends))


def _de_tax_id(seed: int) -> str:
    """Ten digits with one of them twice and one missing (the rule since 2016), then the
    ISO 7064 MOD 11,10 check digit; bare, or printed `86 095 742 719`."""
    rnd = random.Random(seed)
    while True:
        body = rnd.sample(string.digits, 9)
        body.insert(rnd.randrange(10), rnd.choice(body))
        if body[0] != "0":
            value = "".join(body) + _mod_11_10_check("".join(body))
            return _grouped(value, (2, 3, 3, 3)) if seed % 2 else value


def _tfn(seed: int) -> str:
    rnd = random.Random(seed)
    while True:
        body = f"{rnd.randrange(10**8):08d}"
        check = sum(int(d) * w for d, w in zip(body, (1, 4, 3, 7, 5, 8, 6, 9), strict=True)) % 11
        if check < 10:  # 10 x check == -sum (mod 11), and 10 == -1
            return _grouped(f"{body}{check}", (3, 3, 3)) if seed % 2 else f"{body}{check}"


def _cpr(seed: int) -> str:
    """A birth date and 4 digits, the first giving the century (0-3: the 1900s, 4: 2000
    to 2036); for odd seeds one issued before 2007, its digits weighted 4, 3, 2, 7, 6, 5,
    4, 3, 2, 1 a multiple of 11."""
    rnd = random.Random(seed)
    while True:
        day = datetime.date(1940, 1, 1) + datetime.timedelta(days=rnd.randrange(30_000))
        century = rnd.choice("0123" if day.year < 2000 else "4")
        body = f"{day:%d%m%y}{century}{rnd.randrange(100):02d}"
        check = -sum(int(d) * w for d, w in zip(body, (4, 3, 2, 7, 6, 5, 4, 3, 2), strict=True))
        check %= 11
        if check < 10:
            return f"{body[:6]}-{body[6:]}{check if seed % 2 else rnd.randrange(10)}"


def _aadhaar(seed: int) -> str:
    """Faker's `aadhaar_id` is mostly not Verhoeff-valid: the check digit is the one of ten
    that the (separately tested) Verhoeff check accepts. Printed in groups, or bare."""
    rnd = random.Random(seed)
    body = f"{rnd.randrange(2 * 10**10, 10**11)}"
    value = next(body + d for d in string.digits if id_checks.verhoeff(body + d))
    return _grouped(value, (4, 4, 4)) if seed % 2 else value


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


_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
_CONSONANTS = "BCDFGHJKLMNPQRSTVWXYZ"


def _birth(rnd: random.Random) -> datetime.date:
    return datetime.date(1930, 1, 1) + datetime.timedelta(days=rnd.randrange(33_000))


def _curp(seed: int) -> str:
    """RENAPO's pattern: a consonant and a vowel, two letters, the birth date, sex, a
    state, three consonants, a digit (born before 2000) or a letter, the check digit."""
    rnd = random.Random(seed)
    day = _birth(rnd)
    body = (rnd.choice(_CONSONANTS) + rnd.choice("AEIOU")
            + "".join(rnd.choices(string.ascii_uppercase, k=2)) + f"{day:%y%m%d}"
            + rnd.choice("HM") + rnd.choice(["DF", "JC", "NL", "VZ", "YN", "NE"])
            + "".join(rnd.choices(_CONSONANTS, k=3))
            + rnd.choice(string.digits if day.year < 2000 else string.ascii_uppercase))
    total = sum(_CURP_ALPHABET.index(c) * (18 - i) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _my_number(seed: int) -> str:
    """11 digits, and the check digit from weights 2-7, 2-6 read from the right."""
    body = f"{random.Random(seed).randrange(10**11):011d}"
    total = sum(int(d) * (n + 1 if n <= 6 else n - 5) for n, d in enumerate(body[::-1], 1))
    value = body + str(0 if total % 11 <= 1 else 11 - total % 11)
    return f"{value[:4]} {value[4:8]} {value[8:]}" if seed % 2 else value


def _rrn(seed: int) -> str:
    """Issued before October 2020 (a check digit: dashed, or bare), or since (random
    digits: written bare here, its last digit one the check would not give)."""
    rnd = random.Random(seed)
    day = _birth(rnd)
    sex = rnd.choice("12" if day.year < 2000 else "34")
    body = f"{day:%y%m%d}{sex}{rnd.randrange(10**5):05d}"
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = (11 - sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11) % 10
    if seed % 3 == 2:
        return body + str((check + 1) % 10)
    return f"{body[:6]}-{body[6:]}{check}" if seed % 3 == 0 else f"{body}{check}"


_NRIC_SERIES = {"S": (0, "JZIHGFEDCBA"), "T": (4, "JZIHGFEDCBA"), "F": (0, "XWUTRQPNMLK"),
                "G": (4, "XWUTRQPNMLK"), "M": (3, "XWUTRQPNJLK")}


def _nric(seed: int) -> str:
    rnd = random.Random(seed)
    series = rnd.choice("STFGM")
    offset, letters = _NRIC_SERIES[series]
    body = f"{rnd.randrange(10**7):07d}"
    total = offset + sum(int(d) * w for d, w in zip(body, (2, 7, 6, 5, 4, 3, 2), strict=True))
    return series + body + letters[total % 11]


def _za_id(seed: int) -> str:
    """A birth date, a sequence, citizenship, 8, and the Luhn digit (of ten, the one the
    separately tested Luhn check accepts); bare or spaced as printed."""
    rnd = random.Random(seed)
    body = f"{_birth(rnd):%y%m%d}{rnd.randrange(10**4):04d}{rnd.choice('01')}8"
    value = next(body + d for d in string.digits if luhn(body + d))
    return f"{value[:6]} {value[6:10]} {value[10:]}" if seed % 2 else value


def _nhs(seed: int) -> str:
    rnd = random.Random(seed)
    while True:
        body = f"{rnd.randrange(4 * 10**8, 10**9):09d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11
        if check != 10:
            value = body + str(check % 11)
            return f"{value[:3]} {value[3:6]} {value[6:]}" if seed % 2 else value


def _cnpj(seed: int) -> str:
    """Faker's, printed (`00.000.000/0000-00`) or bare."""
    value = _fake("pt_BR", seed).cnpj()
    return value if seed % 2 else value.replace(".", "").replace("/", "").replace("-", "")


def _medicare(seed: int) -> str:
    """8 digits (the first 2-6), the check digit, the issue number; and the person's
    place on the card (1-9), or not; printed in groups, or bare."""
    rnd = random.Random(seed)
    body = f"{rnd.randrange(2, 7)}{rnd.randrange(10**7):07d}"
    check = sum(int(d) * w for d, w in zip(body, (1, 3, 7, 9) * 2, strict=True)) % 10
    value = f"{body[:4]} {body[4:]}{check} {rnd.randrange(1, 10)}"
    value = value + f" {rnd.randrange(1, 10)}" if seed % 2 else value
    return value if seed % 3 else value.replace(" ", "")


_ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def _abn(seed: int) -> str:
    """9 random digits after the two (10-99) that make the weighted sum, its first digit
    less 1, a multiple of 89."""
    rnd = random.Random(seed)
    while True:
        tail = f"{rnd.randrange(10**9):09d}"
        for head in range(10, 100):
            value = f"{head}{tail}"
            reduced = str(int(value[0]) - 1) + value[1:]
            if sum(int(d) * w for d, w in zip(reduced, _ABN_WEIGHTS, strict=True)) % 89 == 0:
                return f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}" if seed % 2 else value


def _acn(seed: int) -> str:
    body = f"{random.Random(seed).randrange(10**8):08d}"
    value = body + str(-sum(int(d) * w for d, w in zip(body, range(8, 0, -1), strict=True)) % 10)
    return _grouped(value, (3, 3, 3)) if seed % 2 else value


_UEN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWX0123456789"


def _uen(seed: int) -> str:
    """A business's (8 digits), a local company's (the year and 5 digits) or another
    entity's (`T08LL0001`), with ACRA's check letter."""
    rnd = random.Random(seed)
    kind = seed % 3
    if kind == 2:
        body = f"{rnd.choice('ST')}{rnd.randrange(100):02d}{rnd.choice(['LL', 'LP', 'FC', 'CC'])}"
        body += f"{rnd.randrange(10**4):04d}"
        total = sum(_UEN_ALPHABET.index(c) * w
                    for c, w in zip(body, (4, 3, 5, 3, 10, 2, 2, 5, 7), strict=True))
        return body + _UEN_ALPHABET[(total - 5) % 11]
    body = (f"{rnd.randrange(10**8):08d}" if kind == 0
            else f"{rnd.randrange(1970, 2025)}{rnd.randrange(10**5):05d}")
    weights, letters = (((10, 4, 9, 3, 8, 2, 7, 1), "XMKECAWLJDB") if kind == 0
                        else ((10, 8, 6, 4, 9, 7, 5, 3, 1), "ZKCMDNERGWH"))
    return body + letters[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def _bsn(seed: int) -> str:
    """Faker's, bare or printed `1234.56.782`."""
    value = _fake("nl_NL", seed).ssn()
    return _grouped(value, (4, 2, 3), ".") if seed % 2 else value


def _it_vat(seed: int) -> str:
    """Faker's, with Italy's VAT prefix (`IT00743110157`) or bare."""
    value = _fake("it_IT", seed).vat_id()
    return value if seed % 2 else value[2:]


def _letters(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choices(string.ascii_uppercase, k=n))


def _number(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choices(string.digits, k=n))


def _us_driver_license(seed: int) -> str:
    """Some states' formats (California's, New York's, Texas's, Florida's, Illinois's,
    Washington's)."""
    rnd = random.Random(seed)
    return rnd.choice([_letters(rnd, 1) + _number(rnd, 7), _number(rnd, 9), _number(rnd, 8),
                       _letters(rnd, 1) + _number(rnd, 12), _letters(rnd, 1) + _number(rnd, 11),
                       "WDL" + _letters(rnd, 3) + _number(rnd, 6)])


def _vehicle(seed: int) -> str:
    rnd = random.Random(seed)
    state, series = rnd.choice(["MH", "DL", "KA", "TN", "UP", "WB"]), _letters(rnd, seed % 2 + 1)
    parts = [state, f"{rnd.randrange(1, 100):02d}", series, _number(rnd, 4)]
    return ("", " ", "-")[seed % 3].join(parts)


# Detector -> (a valid id as commonly written, from a seed).
VALID: dict[str, Callable[[int], str]] = {
    "uk_nino": _nino,
    "in_aadhaar": _aadhaar,
    "de_tax_id": _de_tax_id,
    "nl_bsn": _bsn,
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
    "us_itin": lambda seed: _fake("en_US", seed).itin(),
    "mx_curp": _curp,
    "jp_my_number": _my_number,
    "kr_rrn": _rrn,
    "cn_resident_id": lambda seed: _fake("zh_CN", seed).ssn(),
    "sg_nric": _nric,
    "za_id": _za_id,
    "tr_kimlik": lambda seed: _fake("tr_TR", seed).ssn(),
    "il_id": lambda seed: _fake("he_IL", seed).ssn(),
    "uk_nhs": _nhs,
    "br_cnpj": _cnpj,
    "au_medicare": _medicare,
    "au_abn": _abn,
    "in_pan": lambda seed: _fake("en_IN", seed).pan(),
    "au_acn": _acn,
    "th_tnin": lambda seed: _fake("th_TH", seed).ssn().replace("-", "-" if seed % 2 else ""),
    "it_vat": _it_vat,
    "sg_uen": _uen,
    "ng_nin": lambda seed: _number(random.Random(seed), 11),
    "us_passport": lambda seed: _fake("en_US", seed).passport_number(),
    "in_passport": lambda seed: _letters(random.Random(seed), 1) + _number(random.Random(seed), 7),
    "it_passport": lambda seed: _fake("it_IT", seed).passport_number(),
    "it_identity_card": lambda seed: _fake("it_IT", seed).cie(),
    "in_voter": lambda seed: _letters(random.Random(seed), 3) + _number(random.Random(seed), 7),
    "us_driver_license": _us_driver_license,
    "it_driver_license": lambda seed: "U1" + _number(random.Random(seed), 7) + "A",
    "us_bank_number": lambda seed: _number(random.Random(seed), 8 + seed % 10),
    "in_vehicle_registration": _vehicle,
}
# Detectors whose ids have no check character: found by their format, after a cue.
SHAPE_ONLY = frozenset({"ng_nin", "us_passport", "in_passport", "it_passport",
                        "it_identity_card", "in_voter", "us_driver_license",
                        "it_driver_license", "us_bank_number", "in_vehicle_registration"})
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
    "us_itin": ("ITIN:", "itin", "SSN/ITIN"),
    "mx_curp": ("CURP:", "curp", "CURP"),
    "jp_my_number": ("マイナンバー：", "myNumber", "個人番号"),  # noqa: RUF001
    "kr_rrn": ("주민등록번호:", "rrn", "주민등록번호"),
    "cn_resident_id": ("身份证号码", "id_card", "公民身份号码"),
    "sg_nric": ("NRIC:", "nric", "NRIC/FIN"),
    "za_id": ("ID-nommer:", "sa_id", "RSA ID"),
    "tr_kimlik": ("T.C. Kimlik No:", "tckn", "TC Kimlik No"),
    "il_id": ("מספר תעודת זהות:", "teudat_zehut", "ת.ז."),
    "uk_nhs": ("NHS No:", "nhs_number", "NHS Number"),
    "br_cnpj": ("CNPJ:", "cnpj", "CNPJ"),
    "au_medicare": ("Medicare card:", "medicare_number", "Medicare No"),
    "au_abn": ("ABN:", "abn", "ABN"),
    "in_pan": ("PAN card no.", "pan", "PAN"),
    "au_acn": ("ACN", "acn", "Australian Company Number"),
    "th_tnin": ("เลขประจำตัวประชาชน", "thai_id", "Thai ID"),
    "it_vat": ("Partita IVA", "partita_iva", "P.IVA"),
    "sg_uen": ("UEN:", "uen", "UEN"),
    "ng_nin": ("NIN:", "nin", "NIN"),
    "us_passport": ("Passport No.", "passport_number", "Passport"),
    "in_passport": ("Passport number", "passport", "Passport No"),
    "it_passport": ("passaporto n.", "passaporto", "Passaporto"),
    "it_identity_card": ("carta d'identità", "numero_cie", "Carta di identità"),
    "in_voter": ("Voter ID", "voter_id", "EPIC No"),
    "us_driver_license": ("Driver's license #", "drivers_license", "Driver License"),
    "it_driver_license": ("patente di guida", "patente", "Patente"),
    "us_bank_number": ("Account number:", "account_number", "Bank Account"),
    "in_vehicle_registration": ("Vehicle registration:", "vehicle_number", "Vehicle No"),
}
def _a_timestamp(number: str) -> bool:
    """`yymmdd-hhmm` or `20yymmdd-hhmm` of this century, as a compact timestamp reads."""
    stamp = number[2:] if len(number) == 12 and number.startswith("20") else number
    return (len(stamp) == 10 and stamp[:2] < "40" and stamp[6:8] < "24" and stamp[8:] < "60"
            and id_checks.date_ok(2000 + int(stamp[:2]), int(stamp[2:4]), int(stamp[4:6])))


def _printed(value: str) -> bool:
    return not value.isdigit()


# Detector -> which of its forms (as VALID writes them) are found with no cue: grouped or
# lettered ones, printed CPFs, dotted AHV numbers, HETUs with a letter in them, printed
# CNPJs, dashed RRNs (with a check digit: `_rrn` writes the others bare); and printed as
# the id is (its groups), unless it reads as a compact timestamp, or a CPR issued since
# 2007 (no modulus 11); and UENs of the two formats that are not 8 digits and a letter.
WITHOUT_CUE: dict[str, Callable[[str], bool]] = {
    **dict.fromkeys(("uk_nino", "es_nif", "it_fiscal_code", "fr_nir", "mx_curp", "cn_resident_id",
                     "sg_nric"), lambda _v: True),
    **dict.fromkeys(("in_aadhaar", "de_tax_id", "ca_sin", "au_tfn", "jp_my_number",
                     "za_id", "au_medicare", "au_abn", "th_tnin", "it_vat"), _printed),
    "kr_rrn": lambda value: "-" in value,
    "br_cnpj": lambda value: "/" in value,
    "fi_hetu": lambda value: not value.replace("-", "").isdigit() or not _a_timestamp(
        value.replace("-", "")),
    "br_cpf": lambda value: "." in value,
    "ch_ahv": lambda value: not value.isdigit(),
    "se_personnummer": lambda value: _printed(value) and not _a_timestamp(digits(value)),
    "dk_cpr": lambda value: (id_checks.dk_cpr_mod11(digits(value))
                             and not _a_timestamp(digits(value))),
    "sg_uen": lambda value: len(value) == 10,
    # Not a year and a month first, as a calendar version is (`2024.10.123`).
    "nl_bsn": lambda value: _printed(value) and not ("1900" <= value[:4] <= "2099"
                                                     and "01" <= value[5:7] <= "12"),
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
    assert found(detector, f"Anna gave {value} yesterday.") == expected


# Words and marks that say a number is something else: an order's, a phone's, an amount.
_SOMETHING_ELSE = ("ref {} ok", "Order {} shipped", "Tel. {}", "call me on {}", "Handy: {}",
                   "{} €", "USD {}", "(351) {}", '{{"phone": "{}"}}', "Rechnung {}")
PRINTED = (*(name for name, free in WITHOUT_CUE.items() if free is _printed), "nl_bsn")


@pytest.mark.parametrize("detector", PRINTED)
@pytest.mark.parametrize("frame", _SOMETHING_ELSE)
@settings(max_examples=5, deadline=None)
@given(seed=SEEDS)
def test_a_printed_id_said_to_be_something_else_is_none(detector: str, frame: str,
                                                         seed: int) -> None:
    """A printed id with no cue of its own is none where a word labels it as another
    thing, a currency stands beside it, or a phone number's code leads to it."""
    value = VALID[detector](seed)
    assume(_printed(value))
    assert found(detector, frame.format(value)) == []


@pytest.mark.parametrize("detector", sorted(set(VALID) - SHAPE_ONLY))
@FAKER_SETTINGS
@given(seed=SEEDS)
def test_a_wrong_check_character_is_no_id(detector: str, seed: int) -> None:
    value = VALID[detector](seed)
    if detector == "dk_cpr":  # no check digit: a day no month has
        value = "32" + value[2:]
    elif detector == "uk_nino":  # no check character: a suffix never issued
        value = value[:-1] + "E"
    elif detector == "kr_rrn":  # no check digit since 2020: a 13th month
        value = value[:2] + "13" + value[4:]
    elif detector == "us_itin":  # no check digit: a group outside the IRS's ranges
        value = value[:4] + "69" + value[6:]
    elif detector == "in_pan":  # no check letter: a holder's kind never issued
        value = value[:3] + "D" + value[4:]
    elif detector == "au_medicare":  # the check digit is the 9th, then the issue number
        i = [i for i, c in enumerate(value) if c.isdigit()][8]
        value = value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:]
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
        ("ca_sin", "using 130692544", []),  # "sin" inside a word; bare: a cue
        ("ca_sin", "130 692 544 and 130-692-544", ["130 692 544", "130-692-544"]),  # printed
        ("ca_sin", "+1 130 692 544, 130 692 544 12", []),  # groups of a longer number
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
        ("mx_curp", "BOXW310820HNERXN09", ["BOXW310820HNERXN09"]),
        ("mx_curp", "boxw310820hnerxn09", []),  # lower case
        ("mx_curp", "BOXW310820HNERXN08", []),  # check digit
        ("mx_curp", "BOXW311320HNERXN09", []),  # no month 13
        ("mx_curp", "BOXW310820HZZRXN09", []),  # no state ZZ
        ("mx_curp", "BOXW310820HNERAN09", []),  # a vowel where consonants go
        ("jp_my_number", "マイナンバー 6214 9832 0257 / 6214-9832-0257",
         ["6214 9832 0257", "6214-9832-0257"]),
        ("jp_my_number", "order 621498320257", []),  # a 12-digit order number, no cue
        ("jp_my_number", "マイナンバー 621498320258", []),
        ("kr_rrn", "971013-9019902", ["971013-9019902"]),  # dashed, with its check digit
        ("kr_rrn", "9710139019902", []),  # bare: an EAN-13's length, a cue
        ("kr_rrn", "971013-9019903", []),  # issued since 2020? only with a cue
        ("kr_rrn", "주민등록번호: 201015-3123450", ["201015-3123450"]),
        ("kr_rrn", "주민등록번호: 201315-3123450", []),  # no month 13
        ("cn_resident_id", "身份证号码：11010519491231002X。", ["11010519491231002X"]),  # noqa: RUF001
        ("cn_resident_id", "360426199101010071", ["360426199101010071"]),
        ("cn_resident_id", "360426199113010071", []),  # no month 13
        ("cn_resident_id", "960426199101010071", []),  # no region 9
        ("cn_resident_id", "36042619910101007X", []),  # check character
        ("sg_nric", "S1234567D T1234567J F1234567N G1234567X M1234567K",
         ["S1234567D", "T1234567J", "F1234567N", "G1234567X", "M1234567K"]),
        ("sg_nric", "S1234567E", []),
        ("sg_nric", "A1234567D", []),  # no series A
        ("sg_nric", "s1234567d", []),
        ("za_id", "ID number: 8001015009087", ["8001015009087"]),
        ("za_id", "EAN 8001015009087", []),  # a barcode's length: a cue
        ("za_id", "SA ID 8013015009083", []),  # no month 13
        ("tr_kimlik", "TC Kimlik No: 10000000146", ["10000000146"]),
        ("tr_kimlik", "ref 10000000146", []),
        ("tr_kimlik", "kimlik no 10000000147", []),
        ("il_id", 'ת"ז 000000018', ["000000018"]),
        ("il_id", "order 000000018", []),
        ("uk_nhs", "NHS number: 943 476 5919", ["943 476 5919"]),
        ("uk_nhs", "call 943 476 5919", []),  # a phone number's grouping, no cue
        ("uk_nhs", "NHS number: 943 476 5918", []),
        ("br_cnpj", "11.222.333/0001-81", ["11.222.333/0001-81"]),
        ("br_cnpj", "11.222.333/0001.81 11222333000181", []),  # printed with a dash; a cue
        ("br_cnpj", "CNPJ 11222333000181", ["11222333000181"]),
        ("br_cnpj", "CNPJ 00.000.000/0000-00", []),  # one digit repeated
        ("au_medicare", "Medicare 2123 45670 1", ["2123 45670 1"]),
        ("au_medicare", "Medicare 7123 45670 1", []),  # no card starts with 7
        ("au_medicare", "ref 2123456701", []),
        ("au_abn", "ABN 51 824 753 556", ["51 824 753 556"]),
        ("au_abn", "51 824 753 556", ["51 824 753 556"]),  # printed: mod 89
        ("au_abn", "51824753556", []),
        ("au_abn", "ABN 51 824 753 557", []),
        ("in_pan", "PAN: ABCPE1234F", ["ABCPE1234F"]),
        ("in_pan", "part ABCPE1234F", []),  # a part number's shape: a cue
        ("in_pan", "PAN: ABCDE1234F", []),  # D is no holder's kind
        ("in_pan", "PAN: abcpe1234f", []),
        # Printed as the id is, with no cue; and what says it is something else.
        ("au_tfn", "123 456 782", ["123 456 782"]),
        ("au_tfn", "Tel. 123 456 782, (02) 123 456 782, € 123 456 782, Order 123 456 782", []),
        ("in_aadhaar", "2345 6789 0124 / 2345-6789-0124", ["2345 6789 0124", "2345-6789-0124"]),
        ("in_aadhaar", "invoice 2345 6789 0124, 2345 6789 0124 8", []),
        ("in_aadhaar", "Aadhaar 2000 0990 0002", []),  # a palindrome: never issued
        ("de_tax_id", "86 095 742 719", ["86 095 742 719"]),
        ("de_tax_id", "86/095/742/719 86095742719", []),  # slashes: a Steuernummer's mark
        ("nl_bsn", "1112.22.333", ["1112.22.333"]),
        ("nl_bsn", "111 222 333 111.222.333", []),  # in threes: an amount's grouping too
        ("nl_bsn", "2024.10.018", []),  # a year and a month first: a calendar version
        ("nl_bsn", "BSN 2024.10.018", ["2024.10.018"]),
        ("dk_cpr", "150375-2405", ["150375-2405"]),  # issued before 2007: modulus 11
        ("dk_cpr", "010190-1234", []),  # since 2007 (no modulus 11): a cue
        ("dk_cpr", "built 240115-0903", []),  # modulus 11, and a compact timestamp
        ("dk_cpr", "CPR 240115-0903", ["240115-0903"]),
        ("dk_cpr", "CPR 290200-4000 290200-1000", ["290200-4000"]),  # 2000 leap, 1900 not
        ("se_personnummer", "811218-9876 and 19811218-9876", ["811218-9876", "19811218-9876"]),
        ("se_personnummer", "240115-0905 20240115-0905", []),  # compact timestamps
        ("se_personnummer", "811218 9876", []),
        ("fi_hetu", "131052-1003", ["131052-1003"]),
        ("za_id", "800101 5009 087", ["800101 5009 087"]),
        ("jp_my_number", "6214 9832 0257", ["6214 9832 0257"]),
        ("au_medicare", "2123 45670 1", ["2123 45670 1"]),
        ("ch_ahv", "756 9217 0769 85", ["756 9217 0769 85"]),
        # More countries: checked, and printed or after a cue.
        ("au_acn", "ACN 004 085 616, ACN: 010499966", ["004 085 616", "010499966"]),
        ("au_acn", "004 085 616", []),  # printed as SINs and TFNs are: a cue
        ("au_acn", "ACN 004 085 617", []),
        ("th_tnin", "1-2345-45678-78-1", ["1-2345-45678-78-1"]),
        ("th_tnin", "บัตรประชาชน 1234545678781", ["1234545678781"]),
        ("th_tnin", "ref 1234545678781, 1-2345-45678-78-9", []),
        ("th_tnin", "Thai ID 9234545678787", []),  # no holder's kind 9
        ("it_vat", "IT00743110157, IT 00743110157", ["IT00743110157", "IT 00743110157"]),
        ("it_vat", "P.IVA 00743110157", ["00743110157"]),
        ("it_vat", "ref 00743110157", []),
        ("it_vat", "partita IVA 00743111155", []),  # no provincial office 111
        ("sg_uen", "S16FC0121D T01FC6132D 197401143C", ["S16FC0121D", "T01FC6132D", "197401143C"]),
        ("sg_uen", "UEN 00192200M", ["00192200M"]),
        ("sg_uen", "00192200M S16ZZ0121D 197401143D", []),  # a cue; no kind ZZ; check letter
        # No check character: their format, after a cue.
        ("ng_nin", "NIN: 12345678901", ["12345678901"]),
        ("ng_nin", "12345678901, NIN: 11111111111", []),
        ("us_passport", "passport A12345678 / 123456789", ["A12345678", "123456789"]),
        ("us_passport", "ref A12345678", []),
        ("in_passport", "Passport No: J8369854", ["J8369854"]),
        ("it_passport", "passaporto YA1234567", ["YA1234567"]),
        ("it_passport", "YA1234567 ya1234567", []),
        ("it_identity_card", "carta d'identità CA12345AB, CIE: 1234567AB",
         ["CA12345AB", "1234567AB"]),
        ("it_identity_card", "CA12345AB", []),
        ("in_voter", "Voter ID ABC1234567", ["ABC1234567"]),
        ("in_voter", "ABC1234567, voter id abc1234567", []),
        ("us_driver_license", "Driver's license: D1234567, DL# 123456789",
         ["D1234567", "123456789"]),
        ("us_driver_license", "D1234567, license: MIT 2024", []),
        ("it_driver_license", "patente U1H34567XA", ["U1H34567XA"]),
        ("it_driver_license", "U1H34567XA", []),
        ("us_bank_number", "Account number: 12345678901", ["12345678901"]),
        ("us_bank_number", "account 12345678901, acct 1234567", []),  # a word; too short
        ("in_vehicle_registration", "vehicle MH 12 AB 1234, reg no DL 3C AB 1234",
         ["MH 12 AB 1234", "DL 3C AB 1234"]),
        ("in_vehicle_registration", "MH 12 AB 1234, vehicle XX 12 AB 1234", []),  # no state XX
    ],
)
def test_rules_and_forms(detector: str, text: str, expected: list[str]) -> None:
    assert found(detector, text) == expected


# Detector -> a sentence in its country's language (or English), and a `key=value` line.
SENTENCES: dict[str, tuple[str, str]] = {
    "us_itin": ("My ITIN is {} and I file jointly.", "itin={}"),
    "mx_curp": ("Mi CURP es {}, por favor actualícela.", "curp={}"),
    "jp_my_number": ("私のマイナンバーは{}です。", "my_number={}"),
    "kr_rrn": ("제 주민등록번호는 {}입니다.", "rrn={}"),
    "cn_resident_id": ("我的身份证号码是{}，请核对。", "sfzh={}"),  # noqa: RUF001
    "sg_nric": ("My NRIC is {}, please update.", "nric={}"),
    "za_id": ("My ID-nommer is {} en ek woon in Kaapstad.", "said={}"),
    "tr_kimlik": ("T.C. Kimlik numaram {} olarak kayıtlı.", "tckn={}"),  # noqa: RUF001
    "il_id": ("מספר תעודת זהות שלי הוא {} תודה", "teudat_zehut={}"),
    "uk_nhs": ("The patient's NHS number is {} (GP: Dr Smith).", "nhs_no={}"),
    "br_cnpj": ("O CNPJ da empresa é {} e a razão social está no contrato.", "cnpj={}"),
    "au_medicare": ("Her Medicare number is {} and she is on the card.", "medicare={}"),
    "au_abn": ("Our ABN is {} and GST is registered.", "abn={}"),
    "in_pan": ("Mera PAN number {} hai.", "pan={}"),
    "au_acn": ("The company's ACN is {} and it trades as Acme.", "acnNumber={}"),
    "th_tnin": ("เลขประจำตัวประชาชนของฉันคือ {} ครับ", "thaiNationalId={}"),
    "it_vat": ("La nostra partita IVA è {} (sede di Milano).", "piva={}"),
    "sg_uen": ("Our UEN is {} and we are registered with ACRA.", "uenNumber={}"),
    "ng_nin": ("My NIN is {} and my BVN is pending.", "ninNumber={}"),
    "us_passport": ("My passport number is {} and it expires in 2031.", "passportNumber={}"),
    "in_passport": ("Mera passport number {} hai.", "passport_no={}"),
    "it_passport": ("Il numero del mio passaporto è {}, rilasciato a Roma.", "passaporto={}"),
    "it_identity_card": ("Il numero della mia carta di identita è {}.", "numeroCie={}"),
    "in_voter": ("Mera voter ID card number {} hai.", "epicNo={}"),
    "us_driver_license": ("My driver's license number is {}, issued in Ohio.", "driverLicense={}"),
    "it_driver_license": ("La mia patente di guida è {}.", "numeroPatente={}"),
    "us_bank_number": ("Please wire it to checking account {} today.", "acctNo={}"),
    "in_vehicle_registration": ("Vehicle registration number {} was seen at the toll.",
                                "vehicleNumber={}"),
}


@pytest.mark.parametrize("detector", list(SENTENCES))
@pytest.mark.parametrize("form", [0, 1], ids=["sentence", "key=value"])
@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_found_in_a_sentence_and_as_key_value(detector: str, form: int, seed: int) -> None:
    value = VALID[detector](seed)
    assert found(detector, SENTENCES[detector][form].format(value)) == [value]


@cache
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
        "phone numbers": [rnd.choice(["+91 ", "0", "+86 1", "+44 7", "+46 70"])
                          + f"{rnd.randrange(10**9):09d}" for _ in range(n)],
        "mobiles grouped in threes": [rnd.choice(["+34 6", "+48 5", "+351 9", "(0) 6", "Tel. 7"])
                                      + _grouped(f"{rnd.randrange(10**8):08d}", (2, 3, 3))
                                      for _ in range(n)],
        "amounts": [rnd.choice(["€ {}", "{} €", "USD {}", "{} kr", "$ {}", "{},00 zł"]).format(
            _grouped(f"{rnd.randrange(10**8, 10**9)}", (3, 3, 3))) for _ in range(n)],
        "calendar versions": [f"{s:%Y.%m}.{rnd.randrange(1000):03d}" for s in stamps],
        "15 digits": [str(rnd.randrange(10**14, 10**15)) for _ in range(n)],
        "uuids and hex": [str(uuid.UUID(int=rnd.getrandbits(128))).upper() if i % 2
                          else f"{rnd.getrandbits(64):016X}" for i in range(n)],
        "skus": ["".join(rnd.choices(string.ascii_uppercase, k=2)) + f"{rnd.randrange(10**6):06d}"
                 + rnd.choice("ABCD") for _ in range(n)],
        "swiss barcodes": [_ean13(f"76{rnd.randrange(10**10):010d}") for _ in range(n)],
        "barcodes": [_ean13(f"{rnd.randrange(10**11, 10**12)}") for _ in range(n)],
        "18-digit snowflake ids": [str(rnd.randrange(10**17, 10**18)) for _ in range(n)],
        "part numbers": ["".join(rnd.choices(string.ascii_uppercase, k=5))
                         + f"{rnd.randrange(10**4):04d}" + rnd.choice(string.ascii_uppercase)
                         for _ in range(n)],
        "dotted numbers": [".".join(f"{rnd.randrange(10**k):0{k}d}" for k in (3, 3, 3))
                           + f"-{rnd.randrange(100):02d}" if i % 2 else
                           f"{rnd.randrange(100, 1000)}.{rnd.randrange(10**4):04d}."
                           f"{rnd.randrange(10**4):04d}.{rnd.randrange(100):02d}"
                           for i in range(n)],
    }


def _ean13(body: str) -> str:
    return body + str(-sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10)


def _flagged(values: list[str], frame: str) -> list[str]:
    detectors = [BY_NAME[name] for name in NEW]
    return [v for v in values if scan(Text(frame.format(v).encode()), detectors)]


@pytest.mark.parametrize("frame", ["ref {} ok", "Anna gave {} yesterday."])
@pytest.mark.parametrize("kind", list(_look_alikes()))
def test_look_alikes_are_left_alone(kind: str, frame: str) -> None:
    values = _look_alikes()[kind]
    flagged = _flagged(values, frame)
    assert len(flagged) <= len(values) // 100, flagged


def test_grouped_numbers_are_printed_ids_only_by_chance_and_with_no_other_word() -> None:
    """Random numbers grouped 3 3 3 and 4 4 4, as SINs, TFNs, Aadhaar and My Numbers are
    printed: after a word saying what they are, none is an id; with none, those that pass
    one of the checksums are (one in six: the cost of finding printed ids with no cue)."""
    rnd = random.Random(2026)
    values = [_grouped(f"{rnd.randrange(10**12):012d}", (4, 4, 4)) if i % 2
              else _grouped(f"{rnd.randrange(10**8, 10**9)}", (3, 3, 3)) for i in range(600)]
    assert len(_flagged(values, "ref {} ok")) <= len(values) // 100
    assert len(_flagged(values, "Anna gave {} yesterday.")) <= len(values) // 5


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
        # The examples of python-stdnum's documentation, the ATO's, NHS Digital's, and the
        # Receita Federal's test CNPJ.
        (id_checks.mx_curp, ["BOXW310820HNERXN09"], ["BOXW310820HNERXN08"]),
        (id_checks.jp_my_number, ["621498320257"], ["621498320258"]),
        (id_checks.kr_rrn, ["9710139019902"], ["9710139019903", "9713139019902"]),
        (id_checks.kr_rrn_date, ["9710139019903"], ["9713139019902"]),
        (id_checks.cn_resident_id, ["360426199101010071", "11010519491231002X"],
         ["360426199101010072"]),
        (id_checks.sg_nric, ["S1234567D", "T1234567J", "F1234567N", "G1234567X"],
         ["S1234567J", "F1234567D"]),
        (id_checks.za_id, ["8001015009087"], ["8001015009088", "8001015039087"]),
        (id_checks.tr_kimlik, ["10000000146"], ["10000000147", "00000000146"]),
        (id_checks.il_id, ["000000018", "123456782"], ["000000019", "000000000"]),
        (id_checks.uk_nhs, ["9434765919"], ["9434765918"]),
        (id_checks.br_cnpj, ["11222333000181"], ["11222333000182", "11111111111111"]),
        (id_checks.au_medicare, ["2123456701", "21234567011"], ["2123456801", "21234567010"]),
        (id_checks.au_abn, ["51824753556"], ["51824753557"]),
        (id_checks.in_pan, ["ABCPE1234F"], ["ABCDE1234F", "ABCP1E234F"]),
        # python-stdnum's examples (ACN, UEN, Thai id, partita IVA), the CPR Office's test
        # number, UIDAI's scheme (no palindrome).
        (id_checks.au_acn, ["004085616", "010499966"], ["004085617"]),
        (id_checks.sg_uen, ["00192200M", "197401143C", "S16FC0121D", "T01FC6132D"],
         ["00192200N", "197401143D", "S16FC0121E", "S16ZZ0121D", "A16FC0121D"]),
        (id_checks.th_tnin, ["3100600445635", "1234545678781"], ["1234545678789",
                                                                 "9234545678787"]),
        (id_checks.it_vat, ["00743110157"], ["00743110158", "00743111155", "00000000000"]),
        (id_checks.dk_cpr_mod11, ["1111111118"], ["1111111119", "3213111118"]),
        (id_checks.dk_cpr, ["2902004000", "0101901234"], ["2902001000", "3202901234"]),
        (id_checks.in_aadhaar, ["234123412346"], ["234123412347", "200009900002"]),
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
    "taxpayer", "user_id", "SSN", "078-05-1120", "078 05 1120", "078.05.1120", "912-70-1234",
    "ITIN", "CURP", "BOXW310820HNERXN09", "マイナンバー", "6214 9832 0257", "621498320257",
    "주민등록번호", "971013-9019902", "9710139019902", "360426199101010071", "S1234567D",
    "ID-nommer", "8001015009087", "T.C. Kimlik No", "10000000146", "תעודת זהות", "000000018",
    "NHS", "943 476 5919", "CNPJ", "11.222.333/0001-81", "11222333000181", "Medicare",
    "2123 45670 1", "ABN", "51 824 753 556", "PAN", "ABCPE1234F", "ACN", "004 085 616",
    "เลขประจำตัวประชาชน", "1-2345-45678-78-1", "1234545678781", "Partita IVA", "IT 00743110157",
    "00743110157", "UEN", "S16FC0121D", "197401143C", "00192200M", "NIN", "12345678901",
    "passport", "passaporto", "A12345678", "J8369854", "YA1234567", "carta d'identità",
    "CA12345AB", "CIE", "voter id", "ABC1234567", "Driver's license", "DL#", "D1234567",
    "patente", "U1H34567XA", "Account number", "acct", "vehicle", "MH 12 AB 1234",
    "1112.22.333", "150375-2405", "Tel.", "€", "(351)"])


@pytest.mark.slow
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
