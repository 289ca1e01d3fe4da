"""Checksums and issuing rules of national identity numbers (national_ids.py's validators).

Each takes the candidate's significant characters only (digits, or upper-case letters and
digits) and runs on candidates, never on whole texts, so they are written for clarity.
The algorithms are the issuing authorities' published ones (references in each docstring).
"""

from __future__ import annotations

import calendar

from extproc.masking.checks import luhn

# --- shared -------------------------------------------------------------------------------


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True))


def date_ok(year: int, month: int, day: int) -> bool:
    """A real calendar day (`year` in full: the leap day depends on it)."""
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


# Verhoeff's dihedral group D5: multiplication and the position permutation.
_D5 = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)
_PERM: list[tuple[int, ...]] = [tuple(range(10))]
for _ in range(7):
    _PERM.append(tuple(_PERM[-1][j] for j in _P1))


def verhoeff(digits: str) -> bool:
    """Verhoeff's check (catches every single-digit error and adjacent transposition)."""
    c = 0
    for i, d in enumerate(reversed(digits)):
        c = _D5[c][_PERM[i % 8][int(d)]]
    return c == 0


def mod_11_10(digits: str) -> bool:
    """ISO 7064 MOD 11,10: the last digit checks the others."""
    product = 10
    for d in digits[:-1]:
        total = (int(d) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[-1])


# --- per country --------------------------------------------------------------------------


def in_aadhaar(digits: str) -> bool:
    """UIDAI: 12 digits, the first 2-9, never a palindrome (UIDAI's numbering scheme),
    Verhoeff check digit last."""
    return (len(digits) == 12 and digits[0] not in "01" and digits != digits[::-1]
            and verhoeff(digits))


def de_tax_id(digits: str) -> bool:
    """Steuerliche Identifikationsnummer (BZSt): 11 digits, the first not 0; among the
    first 10, one digit occurs twice or three times (never three in a row) and every
    other at most once; ISO 7064 MOD 11,10 check digit."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    body = digits[:10]
    counts = sorted((body.count(d) for d in set(body)), reverse=True)
    if counts[0] not in (2, 3) or counts[1:2] not in ([], [1]):
        return False
    if counts[0] == 3 and any(body[i] == body[i + 1] == body[i + 2] for i in range(8)):
        return False
    return mod_11_10(digits)


def nl_bsn(digits: str) -> bool:
    """Burgerservicenummer (the "11-test"): 9 digits weighted 9..2 and -1 sum to a
    multiple of 11; all zeros is none."""
    return (len(digits) == 9 and digits != "000000000"
            and _weighted(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1)) % 11 == 0)


_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIX = {"X": "0", "Y": "1", "Z": "2"}


def es_nif(code: str) -> bool:
    """Spanish DNI (8 digits) or NIE (X, Y or Z and 7 digits) and its control letter:
    the number mod 23 (NIE: the prefix letter read as 0, 1, 2)."""
    number = _NIE_PREFIX.get(code[0], code[0]) + code[1:-1]
    return (len(code) == 9 and number.isdigit()
            and _NIF_LETTERS[int(number) % 23] == code[-1])


# Codice fiscale: a digit replaced by a letter (omocodia) reads as that digit; months are
# letters; the control character weighs odd and even positions differently (DM 23/12/1976).
_OMOCODIA = str.maketrans("LMNPQRSTUV", "0123456789")
_CF_MONTHS = "ABCDEHLMPRST"
_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                   (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21,
                    2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23), strict=True))
_CF_DIGIT_POSITIONS = (6, 7, 9, 10, 12, 13, 14)


def it_fiscal_code(code: str) -> bool:
    """Codice fiscale of a person: 6 letters (name), 2 digits (year), a month letter, 2
    digits (day, +40 for women), a letter and 3 digits (birthplace), the control letter."""
    if len(code) != 16 or not code.isalnum() or not code.isupper():
        return False
    plain = list(code)
    for i in _CF_DIGIT_POSITIONS:
        plain[i] = plain[i].translate(_OMOCODIA)
    if not (code[:6].isalpha() and "".join(plain[i] for i in _CF_DIGIT_POSITIONS).isdigit()
            and code[8] in _CF_MONTHS and code[11].isalpha()):
        return False
    if not (1 <= int(plain[9] + plain[10]) % 40 <= 31):
        return False
    total = sum(_CF_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65)
                for i, c in enumerate(code[:15]))
    return chr(65 + total % 26) == code[15]


_NIR_MONTHS = frozenset(range(1, 13)) | frozenset(range(20, 43)) | frozenset(range(50, 100))


def fr_nir(code: str) -> bool:
    """Numéro d'inscription au répertoire (INSEE), 15 characters: sex (1, 2; 3, 4, 7, 8
    for temporary numbers), year, month (01-12; 20-42 and 50-99 in special cases), département
    (2A and 2B for Corsica: 19 and 18 in the key), commune, order, and the key: 97 minus
    the first 13 digits mod 97."""
    if len(code) != 15 or code[0] not in "123478" or not code[13:].isdigit():
        return False
    body = code[:5] + {"2A": "19", "2B": "18"}.get(code[5:7], code[5:7]) + code[7:13]
    if not body.isdigit() or int(code[3:5]) not in _NIR_MONTHS:
        return False
    return 97 - int(body) % 97 == int(code[13:])


def pl_pesel(digits: str) -> bool:
    """PESEL: YYMMDD (the month +20, +40, +60, +80 for 2000s, 2100s, 2200s, 1800s),
    serial, sex, and a check digit from weights 1, 3, 7, 9."""
    if len(digits) != 11:
        return False
    month = int(digits[2:4])
    century = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800}[month // 20]
    if not date_ok(century + int(digits[:2]), month % 20, int(digits[4:6])):
        return False
    check = _weighted(digits[:10], (1, 3, 7, 9, 1, 3, 7, 9, 1, 3))
    return (10 - check % 10) % 10 == int(digits[10])


def _two_digit_year_date(yy: int, month: int, day: int) -> bool:
    """A day in some century: February 29th needs a leap year, 2000 stands for 00."""
    return date_ok(2000 + yy if yy % 4 == 0 else 2001, month, day)


def se_personnummer(digits: str) -> bool:
    """Swedish personnummer, 10 digits (YYMMDDNNNC) or 12 (the century first): a birth
    date (its day +60 for a samordningsnummer) and a Luhn check over the 10."""
    if len(digits) == 12:
        if digits[:2] not in ("18", "19", "20"):
            return False
        digits = digits[2:]
    if len(digits) != 10:
        return False
    day = int(digits[4:6])
    return (_two_digit_year_date(int(digits[:2]), int(digits[2:4]), day - 60 if day > 60 else day)
            and luhn(digits))


def _cpr_century(yy: int, seventh: str) -> int:
    """The century of a CPR's birth year, from its 7th digit (the CPR Office's table)."""
    if seventh in "0123" or (seventh in "49" and yy >= 37):
        return 1900
    return 1800 if seventh in "5678" and yy >= 58 else 2000


def dk_cpr(digits: str) -> bool:
    """Danish CPR: DDMMYY and 4 digits, the first of them giving the century: a real
    day of that year. Numbers issued since 2007 carry no modulus-11 check, so only the
    date is checked here (`dk_cpr_mod11` for the others)."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    yy = int(digits[4:6])
    return date_ok(_cpr_century(yy, digits[6]) + yy, int(digits[2:4]), int(digits[:2]))


def dk_cpr_mod11(digits: str) -> bool:
    """A CPR issued before 2007: its date, and digits weighted 4, 3, 2, 7, 6, 5, 4, 3, 2,
    1 sum to a multiple of 11."""
    return dk_cpr(digits) and _weighted(digits, (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)) % 11 == 0


def ca_sin(digits: str) -> bool:
    """Canadian social insurance number: 9 digits, Luhn; 0 and 8 are never first."""
    return len(digits) == 9 and digits[0] not in "08" and luhn(digits)


def au_tfn(digits: str) -> bool:
    """Australian tax file number, 9 digits: weights 1, 4, 3, 7, 5, 8, 6, 9, 10, mod 11."""
    return len(digits) == 9 and _weighted(digits, (1, 4, 3, 7, 5, 8, 6, 9, 10)) % 11 == 0


# First letters never issued, second letters never issued, prefixes never allocated (HMRC
# National Insurance Manual NIM39110).
_NINO_FIRST_NOT = frozenset("DFIQUV")
_NINO_SECOND_NOT = frozenset("DFIOQUV")
_NINO_PREFIX_NOT = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def uk_nino(code: str) -> bool:
    """UK National Insurance number: two prefix letters as HMRC allocates them, 6 digits,
    a suffix A-D."""
    return (len(code) == 9 and code[0] not in _NINO_FIRST_NOT and code[1] not in _NINO_SECOND_NOT
            and code[:2] not in _NINO_PREFIX_NOT and code[:2].isalpha() and code[:2].isupper()
            and code[2:8].isdigit() and code[8] in "ABCD")


# ITINs (IRS): 9 digits, the first 9, the 4th and 5th in these ranges.
_ITIN_GROUPS = frozenset(range(50, 66)) | frozenset(range(70, 89)) | {90, 91, 92} | frozenset(
    range(94, 100))


def us_itin(digits: str) -> bool:
    """US individual taxpayer identification number (the IRS's ranges)."""
    return len(digits) == 9 and digits[0] == "9" and int(digits[3:5]) in _ITIN_GROUPS


# Finnish HETU: the sign between date and individual number gives the century (DVV, since
# 2023 also Y X W V U for the 1900s and B-F for the 2000s); the check character is the
# 9 digits mod 31 in this alphabet (no G I O Q Z).
_HETU_CENTURY = {"+": 1800, **dict.fromkeys("-YXWVU", 1900), **dict.fromkeys("ABCDEF", 2000)}
_HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def fi_hetu(code: str) -> bool:
    """Henkilötunnus (Digital and Population Data Services Agency): DDMMYY, the century
    sign, an individual number (002-899; 900-999 temporary) and the check character."""
    if len(code) != 11 or code[6] not in _HETU_CENTURY:
        return False
    number = code[:6] + code[7:10]
    if not number.isdigit() or int(code[7:10]) < 2:
        return False
    return (date_ok(_HETU_CENTURY[code[6]] + int(code[4:6]), int(code[2:4]), int(code[:2]))
            and _HETU_CHECK[int(number) % 31] == code[10])


def br_cpf(digits: str) -> bool:
    """Brazilian CPF (Receita Federal): 9 digits and two mod-11 check digits, the first
    over the 9 weighted 10..2, the second over the 10 weighted 11..2; a number of one
    digit repeated passes both and is never issued."""
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    return all(_weighted(digits[:n], tuple(range(n + 1, 1, -1))) * 10 % 11 % 10 == int(digits[n])
               for n in (9, 10))


def ch_ahv(digits: str) -> bool:
    """Swiss AHV/AVS number (AHVN13): 756 (Switzerland's ISO 3166 code), 9 digits, and an
    EAN-13 check digit (weights 1 and 3 from the left)."""
    return (len(digits) == 13 and digits.startswith("756")
            and _weighted(digits, (1, 3) * 6 + (1,)) % 10 == 0)


# --- Americas, Asia, Africa, the Middle East, and more of Europe and Oceania --------------

# CURP (RENAPO): the states' two-letter codes, NE born abroad; the check digit reads each
# character as its place in this alphabet (Ñ between N and O).
_CURP_STATES = frozenset(("AS", "BC", "BS", "CC", "CL", "CM", "CS", "CH", "DF", "DG", "GT", "GR",
                          "HG", "JC", "MC", "MN", "MS", "NT", "NL", "OC", "PL", "QT", "QR", "SP",
                          "SL", "SR", "TC", "TS", "TL", "VZ", "YN", "ZS", "NE"))
_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
_CURP_VOWELS = frozenset("AEIOUX")
_CURP_NOT_CONSONANTS = frozenset("AEIOU")


def mx_curp(code: str) -> bool:
    """Clave Única de Registro de Población: 4 letters of the name (the second a vowel),
    YYMMDD, sex (H, M, X), state, 3 consonants of the name, a character that is a digit
    for births before 2000 and a letter since, and a check digit: 10 minus the sum of the
    17 characters' values weighted 18..2, mod 10."""
    if len(code) != 18 or not code[:4].isalpha() or code[1] not in _CURP_VOWELS:
        return False
    if (not code[4:10].isdigit() or code[10] not in "HMX" or code[11:13] not in _CURP_STATES
            or not code[13:16].isalpha() or _CURP_NOT_CONSONANTS & set(code[13:16])
            or not code[16].isalnum() or not code[17].isdigit()):
        return False
    century = 1900 if code[16].isdigit() else 2000
    if not date_ok(century + int(code[4:6]), int(code[6:8]), int(code[8:10])):
        return False
    total = sum(_CURP_ALPHABET.index(c) * (18 - i) for i, c in enumerate(code[:17]))
    return (10 - total % 10) % 10 == int(code[17])


def jp_my_number(digits: str) -> bool:
    """Japan's Individual Number (マイナンバー), 12 digits: the 11 weighted 2..7, 2..6 from
    the right, the check digit 11 minus the sum mod 11 (0 where that is 10 or 11)."""
    if len(digits) != 12:
        return False
    total = sum(int(d) * (n + 1 if n <= 6 else n - 5)
                for n, d in enumerate(reversed(digits[:11]), start=1))
    return (0 if total % 11 <= 1 else 11 - total % 11) == int(digits[11])


# The 7th digit of a Korean RRN: the century of birth (and sex, and whether a foreigner).
_RRN_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000,
                "8": 2000, "9": 1800, "0": 1800}


def kr_rrn_date(digits: str) -> bool:
    """Korean resident registration number, 13 digits, as issued since October 2020:
    YYMMDD and the century digit; the other six are random, so no check digit."""
    return (len(digits) == 13
            and date_ok(_RRN_CENTURY[digits[6]] + int(digits[:2]), int(digits[2:4]),
                        int(digits[4:6])))


def kr_rrn(digits: str) -> bool:
    """An RRN issued before October 2020: its last digit 11 minus the 12 weighted 2..9,
    2..5 mod 11, mod 10."""
    if not kr_rrn_date(digits):
        return False
    total = _weighted(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5))
    return (11 - total % 11) % 10 == int(digits[12])


def cn_resident_id(code: str) -> bool:
    """Chinese resident identity card (GB 11643-1999), 18 characters: the region of
    registration (its first digit 1-8), YYYYMMDD, an order number, and an ISO 7064 MOD
    11-2 check character (X for 10)."""
    if len(code) != 18 or not code[:17].isdigit() or code[0] not in "12345678":
        return False
    year = int(code[6:10])
    if not (1880 <= year <= 2099 and date_ok(year, int(code[10:12]), int(code[12:14]))):
        return False
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(code[:17]))
    return "10X98765432"[total % 11] == code[17]


# NRIC/FIN check letters by the first letter's series (ICA): S and T for citizens and
# residents (T from 2000), F and G for foreigners (G from 2000), M from 2022.
_NRIC_LETTERS = {"S": (0, "JZIHGFEDCBA"), "T": (4, "JZIHGFEDCBA"), "F": (0, "XWUTRQPNMLK"),
                 "G": (4, "XWUTRQPNMLK"), "M": (3, "XWUTRQPNJLK")}


def sg_nric(code: str) -> bool:
    """Singapore NRIC or FIN: S, T, F, G or M, 7 digits weighted 2, 7, 6, 5, 4, 3, 2, and
    the check letter of the sum (plus the series' offset) mod 11."""
    if len(code) != 9 or code[0] not in _NRIC_LETTERS or not code[1:8].isdigit():
        return False
    offset, letters = _NRIC_LETTERS[code[0]]
    return letters[(offset + _weighted(code[1:8], (2, 7, 6, 5, 4, 3, 2))) % 11] == code[8]


def za_id(digits: str) -> bool:
    """South African identity number, 13 digits: YYMMDD, a sequence (sex), citizenship (0
    citizen, 1 resident, 2 refugee), a digit once for race and now 8 or 9, and Luhn."""
    return (len(digits) == 13 and digits[10] in "012"
            and _two_digit_year_date(int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
            and luhn(digits))


def tr_kimlik(digits: str) -> bool:
    """T.C. Kimlik No (Turkey), 11 digits, the first not 0: the 10th is 7 times the sum
    of the odd places less the sum of the even ones, mod 10; the 11th the sum of the
    first ten mod 10."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    d = [int(c) for c in digits]
    return ((sum(d[0:9:2]) * 7 - sum(d[1:8:2])) % 10 == d[9]
            and sum(d[:10]) % 10 == d[10])


def il_id(digits: str) -> bool:
    """Israeli Teudat Zehut, 9 digits (shorter ones padded with zeros): digits weighted 1,
    2 alternately, a two-digit product's digits summed: Luhn; all zeros is none."""
    return len(digits) == 9 and digits != "000000000" and luhn(digits)


def uk_nhs(digits: str) -> bool:
    """NHS number (England, Wales, Isle of Man), 10 digits: 11 minus the 9 weighted 10..2
    mod 11 (11 is 0; 10 is never issued)."""
    if len(digits) != 10:
        return False
    check = 11 - _weighted(digits[:9], (10, 9, 8, 7, 6, 5, 4, 3, 2)) % 11
    return check != 10 and check % 11 == int(digits[9])


def _mod_11_cnpj(digits: str, weights: tuple[int, ...]) -> int:
    rest = _weighted(digits, weights) % 11
    return 0 if rest < 2 else 11 - rest


def br_cnpj(digits: str) -> bool:
    """Brazilian CNPJ (Receita Federal), 14 digits: the company (8), the branch (4), and
    two mod-11 check digits weighted 5..2, 9..2 and 6..2, 9..2; one digit repeated is
    none."""
    if len(digits) != 14 or len(set(digits)) == 1:
        return False
    first = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
    return (_mod_11_cnpj(digits[:12], first) == int(digits[12])
            and _mod_11_cnpj(digits[:13], (6, *first)) == int(digits[13]))


def au_medicare(digits: str) -> bool:
    """Australian Medicare card number: 8 digits (the first 2-6), a check digit (the 8
    weighted 1, 3, 7, 9 mod 10), the card's issue number, and the person's place on the
    card (the individual reference number, 1-9) if written."""
    return (len(digits) in (10, 11) and digits[0] in "23456"
            and _weighted(digits[:8], (1, 3, 7, 9) * 2) % 10 == int(digits[8])
            and digits[10:] != "0")


def au_abn(digits: str) -> bool:
    """Australian Business Number, 11 digits: 1 taken from the first, then weighted 10, 1,
    3, 5 ... 19, the sum a multiple of 89."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    return _weighted(str(int(digits[0]) - 1) + digits[1:],
                     (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)) % 89 == 0


def au_acn(digits: str) -> bool:
    """Australian Company Number (ASIC), 9 digits: the 8 weighted 8..1, the check digit
    their sum's complement mod 10."""
    return len(digits) == 9 and (-_weighted(digits[:8], (8, 7, 6, 5, 4, 3, 2, 1))) % 10 == int(
        digits[8])


# The 4th letter of a PAN: the holder's kind (Person, Company, HUF, Firm, AOP, Trust, BOI,
# Local authority, Artificial juridical person, Government).
_PAN_HOLDERS = frozenset("PCHFATBLJG")


def in_pan(code: str) -> bool:
    """Indian Permanent Account Number: 5 letters (the 4th the holder's kind), 4 digits, a
    letter. Its check letter's algorithm is unpublished: a cue does the rest."""
    return (len(code) == 10 and code[:5].isalpha() and code[3] in _PAN_HOLDERS
            and code[5:9].isdigit() and code[9].isalpha())


# --- more of Europe and Asia --------------------------------------------------------------


def it_vat(digits: str) -> bool:
    """Partita IVA (Agenzia delle Entrate), 11 digits: the taxpayer (7, not all 0), the
    provincial office (001-100, or 120, 121, 888, 999), and a Luhn digit."""
    return (len(digits) == 11 and digits[:7] != "0000000"
            and ("001" <= digits[7:10] <= "100" or digits[7:10] in ("120", "121", "888", "999"))
            and luhn(digits))


# UEN (ACRA): each format's weights and check letters; the entity kinds of the `T08LL0001B`
# format (R, S, T for the 1800s, 1900s and 2000s, the year, the kind, 4 digits).
_UEN_BUSINESS = ((10, 4, 9, 3, 8, 2, 7, 1), "XMKECAWLJDB")
_UEN_COMPANY = ((10, 8, 6, 4, 9, 7, 5, 3, 1), "ZKCMDNERGWH")
_UEN_OTHER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWX0123456789"
_UEN_KINDS = frozenset((
    "CC", "CD", "CH", "CL", "CM", "CP", "CS", "CX", "DP", "FB", "FC", "FM", "FN", "GA", "GB", "GS",
    "HS", "LL", "LP", "MB", "MC", "MD", "MH", "MM", "MQ", "NB", "NR", "PA", "PB", "PF", "RF", "RP",
    "SM", "SS", "TC", "TU", "VH", "XL"))


def sg_uen(code: str) -> bool:
    """Singapore Unique Entity Number: a business's (8 digits), a local company's (the
    year of issue and 5 digits) or another entity's (`T08LL0001`), and its check letter."""
    body, check = code[:-1], code[-1:]
    if len(code) in (9, 10) and body.isdigit():
        if len(code) == 10 and not "1800" <= body[:4] <= "2099":
            return False  # a local company's year of issue
        weights, letters = _UEN_BUSINESS if len(code) == 9 else _UEN_COMPANY
        return letters[_weighted(body, weights) % 11] == check
    if (len(code) != 10 or code[0] not in "RST" or not (body[1:3] + body[5:]).isdigit()
            or body[3:5] not in _UEN_KINDS):
        return False
    total = sum(_UEN_OTHER_ALPHABET.index(c) * w
                for c, w in zip(body, (4, 3, 5, 3, 10, 2, 2, 5, 7), strict=True))
    return _UEN_OTHER_ALPHABET[(total - 5) % 11] == check


def th_tnin(digits: str) -> bool:
    """Thai national identification number (Department of Provincial Administration), 13
    digits, the first (the holder's kind) 1-8: the 12 weighted 13..2, the check digit 11
    minus their sum mod 11, mod 10."""
    return (len(digits) == 13 and digits[0] not in "09"
            and (11 - _weighted(digits[:12], tuple(range(13, 1, -1))) % 11) % 10 == int(digits[12]))
