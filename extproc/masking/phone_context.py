"""What the words around a digit string say about it: a phone number (and whose), an id.

A bare or loosely grouped number (`41141707`, `912 345 678`) is a phone number only where
something says so: a phone word just before it (`Tel.:`, `Handy`, `teléfono`, `gsm`), the
JSON key its value is under (`msisdn`, `mobilePhone`, `telefono`), or the CSV header of
its column. A word also says which countries to read it by: `Handy` the German-speaking
ones, `gsm` Belgium and the Netherlands; English words all of phone_regions.LIKELY. An id
word (`order`, `invoice`, `Kundennummer`...) closer to the number than any phone word
says it is not one, whatever its shape; a currency beside it, that it is an amount.

Every word of the vocabulary is made of letters (a-z, or a byte of a non-ASCII one) and
stands at a word's start, so a word is read, not searched for: the text is split into
its runs of letters, and the last run that starts with a stem (or is a word) decides, by
one dict lookup on its first two bytes (~2 µs a number; a Hyperscan pass over the window
costs ~4 µs with its calls, a regular expression of ~100 alternatives ~50 µs).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import NamedTuple, cast

from extproc.masking import compiled, phone_regions
from extproc.masking.detectors import Text
from extproc.masking.phone_regions import LIKELY


class Context(NamedTuple):
    phone: bool  # a phone word (True) or an id word (False) labels the number
    regions: tuple[str, ...]  # the countries the word's language suggests, likeliest first


_DE = ("DE", "AT", "CH")
_FR = ("FR", "BE", "CH")
_NO_PHONE = Context(False, ())

# Phone words, lowercase UTF-8, by the countries whose language they are. A stem may be
# followed by letters (`telefonnummer`, `mobilePhone`); a word stands alone (or plural).
_STEMS: dict[str, tuple[str, ...]] = {
    "phone": LIKELY, "telephon": LIKELY, "mobile": LIKELY, "cellphone": LIKELY,
    "whatsapp": LIKELY, "msisdn": LIKELY, "contact": LIKELY, "fax": LIKELY,
    "telefon": (*_DE, "SE", "NO", "DK", "PL", "TR"), "handy": _DE, "rufnummer": _DE,
    "festnetz": _DE, "anruf": _DE, "mobil": (*_DE, "SE", "NO", "DK"),
    "kontakt": (*_DE, "PL", "SE", "NO", "DK"), "telefoon": ("NL", "BE"), "mobiel": ("NL", "BE"),
    "téléphon": _FR, "appel": _FR,
    "teléfono": ("ES",), "móvil": ("ES",), "movil": ("ES",), "llam": ("ES",),
    "contacto": ("ES",), "telefono": ("IT", "ES", "CH"), "cellulare": ("IT", "CH"),
    "chiam": ("IT", "CH"), "contatto": ("IT", "CH"), "telefone": ("PT", "BR"),
    "telemóvel": ("PT",), "telemovel": ("PT",), "celular": ("BR", "ES", "PT"),
    "contato": ("BR", "PT"), "komórk": ("PL",), "puhelin": ("FI",),
    "телефон": ("RU",), "мобильн": ("RU",), "电话": ("CN",), "手机": ("CN",), "联系": ("CN",),
    "電話": ("JP", "TW", "HK"), "携帯": ("JP",), "전화": ("KR",), "휴대": ("KR",),
    "연락처": ("KR",), "טלפון": ("IL",), "נייד": ("IL",),
}
_WORDS: dict[str, tuple[str, ...]] = {
    "tel": LIKELY, "mob": LIKELY, "cell": LIKELY, "sms": LIKELY, "call": LIKELY,
    "tél": _FR, "portable": _FR, "numéro": _FR, "gsm": ("BE", "NL", "FI"), "fon": _DE,
    "tlf": ("NO", "DK"), "tfn": ("SE",), "puh": ("FI",), "numero": ("IT", "ES", "PT", "BR"),
    "número": ("ES", "PT", "BR"),
}
# Id words: what they label has a number's shape and is no phone number.
_ID_STEMS = (
    "order", "invoice", "tracking", "account", "iban", "isbn", "serial", "ticket",
    "booking", "reservation", "transaction", "shipment", "parcel", "payment", "version",
    "release", "build", "commit", "amount", "price", "total", "postcode", "postal", "barcode",
    "card", "reference", "bestell", "rechnung", "kunde", "konto", "sendung", "paket",
    "auftrag", "commande", "factur", "colis", "pedido", "ordine", "fattur", "encomenda",
    "zamówien", "faktur", "passport", "reisepass", "licen", "aadhaar", "siret", "siren",
    "pesel", "regon", "cnpj", "steuer", "social",
)
_ID_WORDS = ("id", "ref", "sku", "ean", "zip", "plz", "pin", "otp", "vat", "iva", "nif",
             "nip", "cpf", "ssn", "ver")

# (word, whether letters may follow it, what it says)
_VOCABULARY: tuple[tuple[bytes, bool, Context], ...] = (
    *((w.encode(), True, Context(True, r)) for w, r in _STEMS.items()),
    *((w.encode(), False, Context(True, r)) for w, r in _WORDS.items()),
    *((w.encode(), True, _NO_PHONE) for w in _ID_STEMS),
    *((w.encode(), False, _NO_PHONE) for w in _ID_WORDS),
)
# Lowercase letters and the bytes of non-ASCII ones (what a word of the vocabulary is
# made of), and a table that makes every other byte a space.
_LETTERS = bytes([*range(0x61, 0x7B), *range(0x80, 0x100)])
_SPACED = bytes(b if b in _LETTERS else 0x20 for b in range(256))


def _by_prefix() -> dict[bytes, tuple[tuple[bytes, bool, Context, bytes], ...]]:
    """The vocabulary by its words' first two bytes, longest first (`telefone` is
    Portuguese, not `telefon`), each with its plural."""
    entries: dict[bytes, list[tuple[bytes, bool, Context, bytes]]] = {}
    for word, stem, context in sorted(_VOCABULARY, key=lambda v: -len(v[0])):
        entries.setdefault(word[:2], []).append((word, stem, context, word + b"s"))
    return {prefix: tuple(words) for prefix, words in entries.items()}


_BY_PREFIX = _by_prefix()


def _last_label(text: bytes) -> Context | None:
    """What the last word of `text` (lowercase) that the vocabulary has says: a word
    starting with a stem (`telefonnummer`), or a word itself or its plural (`tels`)."""
    for run in reversed(text.translate(_SPACED).split()):
        for word, stem, context, plural in _BY_PREFIX.get(run[:2], ()):
            if run.startswith(word) if stem else run in (word, plural):
                return context
    return None


_WINDOW = 48  # bytes before a number read for a label
_FILLER = 24  # at most this much between a label and its number: `number (mobile): `
_VALUE_REACH = 64  # a key labels the numbers in the first 64 bytes of its value
_KEY_MAX = 64
_WORD_BREAK = re.compile(rb"(?<=[a-z])(?=[A-Z])|[_\-.\s]+")
_DIGIT = re.compile(rb"[0-9]")


@lru_cache(maxsize=1024)
def _name_label(name: bytes) -> Context | None:
    """What a JSON key or a column's name says: its words split (camelCase, snake_case),
    the one nearest its end decides (`customer_phone`, `phone_id`)."""
    return _last_label(_WORD_BREAK.sub(b" ", name).lower())


def phone_key(name: str) -> bool:
    """Whether a JSON key (or a column's name) says its values are phone numbers
    (`msisdn`, `customer_phone`; not `phone_id`), read as `label` reads a value's key."""
    found = _name_label(name.encode("utf-8", "surrogatepass")[-_KEY_MAX:])
    return found is not None and found.phone


def _in_text(window: bytes) -> Context | None:
    """A label right before the number: no digits and at most _FILLER bytes between.
    Only the words of the window's last _FILLER bytes after its last digit are read
    (and the whole of a word that ends there): a word before them is too far."""
    start = len(window) - _FILLER
    start = len(window[:start].rstrip(_LETTERS)) if start > 0 else 0
    tail = window[start:]
    if (digit := _DIGIT.search(tail[::-1])) is not None:
        tail = tail[len(tail) - digit.start():]
    return _last_label(tail)


def label(t: Text, s: int) -> Context | None:
    """What labels the number starting at `s`: a word before it in its text, else its
    JSON key, else its CSV column's name; None when nothing does. A number a URL or a
    form carries is labelled so, else as its carrier is (`Text.carrier_start`)."""
    found = _label(t, s)
    if found is None and (carrier := t.carrier_start(s)) != s:
        found = _label(t, carrier)
    return found


def _label(t: Text, s: int) -> Context | None:
    window = t.before(s, _WINDOW)
    soh = window.rfind(b"\x01")
    if soh == -1:
        return _in_text(window) or _column(t, s)
    if (inside := _in_text(window[soh + 1:])) is not None:
        return inside
    if len(window) - soh > _VALUE_REACH:
        return None
    key_end = s - len(window) + soh
    key_start = t.raw.rfind(b"\x00", max(0, key_end - _KEY_MAX), key_end) + 1
    return _name_label(t.raw[max(key_start, key_end - _KEY_MAX):key_end])


_CURRENCY = "(?:\\$|£|¥|€|₹|\\b(?:eur|usd|gbp|chf|sek|nok|dkk|pln|brl|inr|kr|zł|rs)(?![a-z])|r\\$)"
_MONEY_BEFORE = re.compile(_CURRENCY.encode() + rb"\.? ?\Z", re.IGNORECASE)
_MONEY_AFTER = re.compile(rb"(?:[.,][0-9]{1,2})? ?" + _CURRENCY.encode(), re.IGNORECASE)


def money(t: Text, s: int, e: int) -> bool:
    """A currency sign or code just before the number at `s:e`, or after it (past a
    decimal part): an amount, whatever its digits (phones.py, national_ids.py)."""
    return bool(_MONEY_BEFORE.search(t.raw[max(0, s - 6):s]) or _MONEY_AFTER.match(t.raw, e))


# --- delimited text -----------------------------------------------------------------------

# A CSV header (a text's first line, of at most _HEADER_REACH bytes) labels its column's
# cells in every row below it. A stream's text past its first 512 bytes no longer holds
# that line: the stream gives it (`Text.head`), as the text's header.
_HEADER_REACH = 480
_DELIMITERS = b",;\t|"
_NAME_MAX = 40
_HEADER_MEMO = "phone_context.header"
_CELLS = {d: re.compile(rb'(?:^|(?<=' + re.escape(d) + rb'))[ ]*(?:"((?:[^"]|"")*)"|([^"'
                        + re.escape(d) + rb'\r\n]*))') for d in (bytes([c]) for c in _DELIMITERS)}


class Header(NamedTuple):
    delimiter: bytes
    labels: list[Context | None]  # each column's
    country: int | None  # the column naming the row's country, if one does


def _cells(line: bytes, delimiter: bytes) -> list[tuple[int, int]]:
    """Spans of a record's cells, quoted (RFC 4180) or bare."""
    return [m.span(1) if m.start(1) != -1 else m.span(2)
            for m in _CELLS[delimiter].finditer(line)]


def _header(t: Text) -> Header | None:
    """The delimiter, the labels of the columns and the country's column, if the text's
    first line names a column of either."""
    if _HEADER_MEMO in t.memo:
        return cast("Header | None", t.memo[_HEADER_MEMO])
    header: Header | None = None
    if t.head is not None:  # a stream's text, past its body's first line
        line = t.head.rstrip(b"\r")
        end = len(t.head) if len(t.head) <= _HEADER_REACH else -1
    else:
        end = t.raw.find(b"\n", 0, _HEADER_REACH)
        line = t.raw[:end].rstrip(b"\r")
    n, delimiter = max((line.count(d), bytes([d])) for d in _DELIMITERS)
    if end != -1 and n and b"\x01" not in line:
        names = [line[a:b].strip() for a, b in _cells(line, delimiter)]
        if all(len(name) <= _NAME_MAX for name in names):
            labels = [_name_label(name) for name in names]
            country = next((i for i, name in enumerate(names) if _country_key(name)), None)
            if any(labels) or country is not None:
                header = Header(delimiter, labels, country)
    t.memo[_HEADER_MEMO] = header
    return header


def _row(t: Text, s: int) -> tuple[Header, bytes, list[tuple[int, int]], int] | None:
    """The header, and the line, cells and offset of the row `s` is in, if the row has as
    many cells as the header."""
    if (header := _header(t)) is None:
        return None
    start = t.raw.rfind(b"\n", 0, s) + 1
    end = t.raw.find(b"\n", s)
    line = t.raw[start:len(t.raw) if end == -1 else end].rstrip(b"\r")
    cells = _cells(line, header.delimiter)
    if start == 0 or len(cells) != len(header.labels):
        return None
    return header, line, cells, start


def _column(t: Text, s: int) -> Context | None:
    """The label of the column of the cell `s` is in."""
    if (row := _row(t, s)) is None:
        return None
    header, _, cells, start = row
    return next((header.labels[i] for i, (a, b) in enumerate(cells) if a <= s - start <= b),
                None)


# --- the country a record names ------------------------------------------------------------

# A national number (`090-1234-5678`) is a valid number of some countries and not others;
# a record often says which: a `country`, `locale` or `Land` field of its JSON object, a
# column of its CSV row (`DE`, `de_DE`, `Germany`, `Deutschland`, `+49`). `country` finds
# it for phones.py, which validates the number against that country first.

CONTAINERS = "phone_context.containers"
"""The `Text.memo` key under which masker.py leaves, for a JSON document's scalars joined
into one text (`key SOH value NUL` each), a function giving each scalar's container (its
object, or a table's row) as an id, in order: the joined text does not say which scalars
share an object, and only a number's candidates ask (the list is built at most once)."""

_CONTAINER_IDS, _NULS, _OBJECT_COUNTRY = (
    "phone_context.container_ids", "phone_context.nuls", "phone_context.object_country")
_OBJECT_REACH = 64  # scalars read each way from a number for its object's country
# Names of a field holding a country (separators and case aside), and their endings
# (`billing_country`, `user_locale`, `phone_country_code`).
_COUNTRY_NAMES = frozenset(
    "land pays pais país paese kraj ülke ulke maa 国 国家 国家代码 국가 dialcode callingcode "
    "countrycallingcode".encode().split())
_COUNTRY_ENDINGS = (b"country", b"countrycode", b"countryiso", b"countryname", b"locale")
_NAME_NOISE = re.compile(rb"[\s_\-.]+")


@lru_cache(maxsize=1024)
def _country_key(name: bytes) -> bool:
    """Whether a JSON key or a column's name says its value is a country."""
    flat = _NAME_NOISE.sub(b"", name.lower())
    return flat in _COUNTRY_NAMES or flat.endswith(_COUNTRY_ENDINGS)


_CALLING_CODE = re.compile(r"(?:\+|00)?([1-9][0-9]{0,2})")
_LOCALE = re.compile(r"[A-Za-z]{2,3}[_-]([A-Za-z]{2})(?:[.@].*)?")
# Codes that are not ISO 3166's, as people write them.
_ALIASES = {"uk": "GB", "usa": "US", "u.s.": "US", "u.s.a.": "US", "türkiye": "TR",
            "turkiye": "TR", "한국": "KR", "deutschland": "DE"}


@cache
def _country_names() -> dict[str, str]:
    """Country names (case-folded) in 19 languages, from libphonenumber's geocoding data:
    data/country_names.json, read the first time a record names a country by name."""
    return cast("dict[str, str]", json.loads(
        (compiled.DATA / "country_names.json").read_text("utf-8")))


@lru_cache(maxsize=1024)
def region_named(value: bytes) -> str | None:
    """The region a country field's value names: an ISO code (`DE`), a locale (`de_DE`,
    `pt-BR`, `de_DE.UTF-8`), a calling code (`+49`, `0049`, `49`), or a country's name
    in English or its own language (`Germany`, `Deutschland`)."""
    text = value.decode("utf-8", "replace").strip()
    if (code := _CALLING_CODE.fullmatch(text)) is not None:
        return phone_regions.region_of_calling_code(int(code[1]))
    if (locale := _LOCALE.fullmatch(text)) is not None:
        text = locale[1]
    if len(text) == 2 and text.isascii() and phone_regions.known(text.upper()):
        return text.upper()
    folded = text.casefold()
    return _ALIASES.get(folded) or _country_names().get(folded)


def country(t: Text, s: int) -> str | None:
    """The region the record of the number at `s` names: a field of its JSON object, a
    column of its CSV row, or a mark on its own line before it; None if it names none."""
    if (containers := t.memo.get(CONTAINERS)) is not None:
        return _object_country(t, s, cast("Callable[[], list[int]]", containers))
    if (row := _row(t, s)) is None or row[0].country is None:
        return _line_country(t, s)
    _, line, cells, _ = row
    a, b = cells[row[0].country]
    return region_named(line[a:b])


_LINE_REACH = 128  # bytes of its line read back from a number for a country mark
# A country marked on a line: an ISO code in brackets after a name (`Jan Kowalski (PL)`),
# or a key of a log line or a config (`country=PL`, `locale: pl_PL`).
_LINE_MARK = re.compile(rb"\(([A-Z]{2})\)|(?<![A-Za-z0-9_])(?i:country|locale)(?i:_?code)?"
                        rb"[\"']?[=:] ?[\"']?([A-Za-z]{2}(?:[_-][A-Za-z]{2})?)(?![A-Za-z])")


def _line_country(t: Text, s: int) -> str | None:
    """The region the last country mark on the number's line before it names."""
    start = max(t.raw.rfind(b"\n", max(0, s - _LINE_REACH), s) + 1, s - _LINE_REACH, 0)
    marks = _LINE_MARK.findall(t.raw, start, s)
    return region_named(b"".join(marks[-1])) if marks else None


def _object_country(t: Text, s: int, containers: Callable[[], list[int]]) -> str | None:
    """The country a field of the JSON object holding the scalar at `s` names (the
    scalars of one object are consecutive in the joined text: its own container's)."""
    memo = t.memo
    if (ids := cast("list[int] | None", memo.get(_CONTAINER_IDS))) is None:
        ids = memo[_CONTAINER_IDS] = containers()
        memo[_NULS] = [m.start() for m in _NUL.finditer(t.raw)]
        memo[_OBJECT_COUNTRY] = {}
    nuls = cast("list[int]", memo[_NULS])
    found = cast("dict[int, str | None]", memo[_OBJECT_COUNTRY])
    index = bisect.bisect_left(nuls, s)
    if index >= len(ids):
        return None
    own = ids[index]
    first = index
    while first > max(0, index - _OBJECT_REACH) and ids[first - 1] == own:
        first -= 1
    if first in found:
        return found[first]
    region = None
    last = min(len(ids), index + _OBJECT_REACH)
    for i in range(first, last):
        if ids[i] != own:
            break
        start = nuls[i - 1] + 1 if i else 0
        soh = t.raw.find(b"\x01", start, nuls[i])
        if soh != -1 and _country_key(t.raw[start:soh]) and (
                region := region_named(t.raw[soh + 1:nuls[i]])) is not None:
            break
    found[first] = region
    return region


_NUL = re.compile(b"\x00")
