"""Whether a string of digits is a phone number of a country, by libphonenumber's metadata.

The detector (phones.py) finds candidates by their shape and asks here only for the few
that pass its gates. A national number is read as libphonenumber reads it after parsing:
the trunk prefix (the national "0") stripped, a leading zero kept where it is part of the
number (Italy), then matched against the region's number patterns. The PhoneNumber is
built directly rather than parsed from text: `phonenumbers.parse` costs ~15 µs a region,
the pattern checks 1-6 µs. Answers are cached by their arguments (digits, grouping,
countries): one number recurs in a conversation, in a list of records, and in the audit
record's second masking of a body, and its answer never changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, ValidationResult

# Where tollgate's users' numbers most likely come from, most likely first; a context
# word's language puts its own countries first (phone_context.py).
LIKELY: tuple[str, ...] = ("US", "GB", "DE", "FR", "NL", "BE", "AT", "CH", "ES", "IT", "PT",
                           "BR", "IN", "PL", "SE", "NO", "DK", "FI")

# Countries with a trunk prefix whose numbers are written without it as often as with it:
# North America's "1", Brazil's area codes ("(11) 91234-5678"), India's mobiles. Elsewhere
# a national number without its trunk "0" ("79 123 45 67" for Switzerland) is read as one
# only after a context word.
_TRUNK_OPTIONAL = frozenset({"US", "BR", "IN"})


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    country_code: int
    trunk: str  # the national prefix, "" where there is none
    lengths: frozenset[int]  # of its national numbers, local ones (no area code) included


@cache
def _region(code: str) -> _Region:
    """A region's metadata, read once: LIKELY's at import, any other the first time a
    record names it (phone_context.country)."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(code)
    if meta is None or meta.country_code is None:
        raise ValueError(f"libphonenumber has no metadata for {code}")
    general = meta.general_desc
    lengths = frozenset((*general.possible_length, *general.possible_length_local_only)) if (
        general is not None) else frozenset()
    return _Region(code, meta.country_code, meta.national_prefix or "", lengths)


for _code in LIKELY:
    _region(_code)
_DIGIT_GROUPS = re.compile(r"[0-9]+")


def region_of_calling_code(code: int) -> str | None:
    """The main region of a country calling code (49: DE, 1: US), None if there is none."""
    region = phonenumbers.region_code_for_country_code(code)
    return None if region == phonenumbers.UNKNOWN_REGION else region


def known(region: str) -> bool:
    """Whether libphonenumber has `region`'s numbers (an ISO 3166 code, upper case)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def _number(country_code: int, national: str) -> PhoneNumber:
    zeros = len(national) - len(national.lstrip("0"))
    return PhoneNumber(country_code=country_code, national_number=int(national),
                       italian_leading_zero=zeros > 0 or None,
                       number_of_leading_zeros=zeros if zeros > 1 else None)


def _nationals(digits: str, region: _Region, trunk_required: bool) -> Iterable[str]:
    """The national significant numbers `digits` can stand for in `region`."""
    if region.trunk and digits.startswith(region.trunk):
        yield digits[len(region.trunk):]
    elif not region.trunk or not trunk_required or region.code in _TRUNK_OPTIONAL:
        yield digits


_CACHED = 4096  # distinct answers kept, per question


@lru_cache(maxsize=_CACHED)
def valid(digits: str, regions: tuple[str, ...], trunk_required: bool = True) -> bool:
    """Whether `digits`, written nationally, is a valid number of one of `regions`.

    `trunk_required`: a country with a trunk prefix needs it, unless its numbers are
    commonly written without (see _TRUNK_OPTIONAL)."""
    for code in regions:
        region = _region(code)
        for national in _nationals(digits, region, trunk_required):
            if len(national) in region.lengths and phonenumbers.is_valid_number_for_region(
                    _number(region.country_code, national), code):
                return True
    return False


@lru_cache(maxsize=_CACHED)
def written_as(digits: str, groups: tuple[int, ...], regions: tuple[str, ...],
               trunk_required: bool = True) -> bool:
    """Whether `digits`, in groups of these lengths, is a valid number of one of `regions`
    as that country writes it: grouped as libphonenumber formats its national numbers
    (`081 879 73 09`, `(11) 91234-5678`), or with its trunk prefix and three groups or more
    (`030 123 456 78`): how a number is written, not only its digits, tells it from the
    many other numbers of the same length that happen to be valid somewhere.
    `trunk_required` as for `valid`: where a record names the country, its numbers are
    read with or without their trunk prefix."""
    for code in regions:
        region = _region(code)
        for national in _nationals(digits, region, trunk_required):
            if len(national) not in region.lengths:
                continue
            number = _number(region.country_code, national)
            if not phonenumbers.is_valid_number_for_region(number, code):
                continue
            if len(groups) >= 3 and national != digits:
                return True
            formatted = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
            if _national_groups(formatted, region.trunk) == _national_groups_of(
                    groups, digits, region.trunk):
                return True
    return False


def _national_groups(formatted: str, trunk: str) -> tuple[int, ...]:
    """The group lengths of a formatted national number, its trunk prefix left out."""
    groups = tuple(len(g) for g in _DIGIT_GROUPS.findall(formatted))
    digits = "".join(_DIGIT_GROUPS.findall(formatted))
    return _national_groups_of(groups, digits, trunk)


def _national_groups_of(groups: tuple[int, ...], digits: str, trunk: str) -> tuple[int, ...]:
    if not trunk or not digits.startswith(trunk):
        return groups
    first = groups[0] - len(trunk)
    return ((first,) if first > 0 else ()) + groups[1:]


@lru_cache(maxsize=_CACHED)
def possible(digits: str, regions: tuple[str, ...]) -> bool:
    """Whether `digits` has a length a number of one of `regions` can have, a local number
    dialled without its area code included (US: 7 digits): enough after a context word."""
    for code in regions:
        region = _region(code)
        for national in _nationals(digits, region, trunk_required=False):
            if len(national) in region.lengths and phonenumbers.is_possible_number_with_reason(
                    _number(region.country_code, national)) in (
                    ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
                return True
    return False


@lru_cache(maxsize=_CACHED)
def valid_international(country_code: str, national: str, lenient: bool) -> bool:
    """Whether `national` is a valid (with `lenient`: a possible) number of the country
    that `country_code` (digits, no "+") calls, written with or without its trunk "0"."""
    code = int(country_code)
    for region in phonenumbers.region_codes_for_country_code(code):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        trunk = (meta.national_prefix or "") if meta is not None else ""
        number = national[len(trunk):] if trunk and national.startswith(trunk) else national
        if not number:
            continue
        n = _number(code, number)
        if phonenumbers.is_valid_number_for_region(n, region) or (
                lenient and phonenumbers.is_possible_number(n)):
            return True
    return False
