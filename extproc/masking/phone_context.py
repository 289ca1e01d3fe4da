"""What the words around a digit string say about it: a phone number (and whose), an id.

A bare or loosely grouped number (`41141707`, `912 345 678`) is a phone number only where
something says so: a phone word just before it (`Tel.:`, `Handy`, `teléfono`, `gsm`), the
JSON key its value is under (`msisdn`, `mobilePhone`, `telefono`), or the CSV header of
its column. A word also says which countries to read it by: `Handy` the German-speaking
ones, `gsm` Belgium and the Netherlands; English words all of phone_regions.LIKELY. An id
word (`order`, `invoice`, `Kundennummer`...) closer to the number than any phone word
says it is not one, whatever its shape.

Every word of the vocabulary is made of letters (a-z, or a byte of a non-ASCII one) and
stands at a word's start, so a word is read, not searched for: the text is split into
its runs of letters, and the last run that starts with a stem (or is a word) decides, by
one dict lookup on its first two bytes (~2 µs a number; a Hyperscan pass over the window
costs ~4 µs with its calls, a regular expression of ~100 alternatives ~50 µs).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple, cast

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
    "telefon": (*_DE, "SE", "NO", "DK", "PL"), "handy": _DE, "rufnummer": _DE,
    "festnetz": _DE, "anruf": _DE, "mobil": (*_DE, "SE", "NO", "DK"),
    "kontakt": (*_DE, "PL", "SE", "NO", "DK"), "telefoon": ("NL", "BE"), "mobiel": ("NL", "BE"),
    "téléphon": _FR, "appel": _FR,
    "teléfono": ("ES",), "móvil": ("ES",), "movil": ("ES",), "llam": ("ES",),
    "contacto": ("ES",), "telefono": ("IT", "ES", "CH"), "cellulare": ("IT", "CH"),
    "chiam": ("IT", "CH"), "contatto": ("IT", "CH"), "telefone": ("PT", "BR"),
    "telemóvel": ("PT",), "telemovel": ("PT",), "celular": ("BR", "ES", "PT"),
    "contato": ("BR", "PT"), "komórk": ("PL",), "puhelin": ("FI",),
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
    JSON key, else its CSV column's name; None when nothing does."""
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


# --- delimited text -----------------------------------------------------------------------

# A CSV header labels its column's cells, read within the first _HEADER_REACH bytes of a
# text only: a stream keeps 512 bytes before what it has not released (stream.py), so a
# header further back would label a cell in `mask_text` and not in a stream.
_HEADER_REACH = 480
_DELIMITERS = b",;\t|"
_NAME_MAX = 40
_HEADER_MEMO = "phone_context.header"
_CELLS = {d: re.compile(rb'(?:^|(?<=' + re.escape(d) + rb'))[ ]*(?:"((?:[^"]|"")*)"|([^"'
                        + re.escape(d) + rb'\r\n]*))') for d in (bytes([c]) for c in _DELIMITERS)}
Header = tuple[bytes, list[Context | None]]


def _cells(line: bytes, delimiter: bytes) -> list[tuple[int, int]]:
    """Spans of a record's cells, quoted (RFC 4180) or bare."""
    return [m.span(1) if m.start(1) != -1 else m.span(2)
            for m in _CELLS[delimiter].finditer(line)]


def _header(t: Text) -> Header | None:
    """The delimiter and the labels of the columns, if the text's first line names them."""
    if _HEADER_MEMO in t.memo:
        return cast("Header | None", t.memo[_HEADER_MEMO])
    header: Header | None = None
    end = t.raw.find(b"\n", 0, _HEADER_REACH)
    line = t.raw[:end].rstrip(b"\r")
    n, delimiter = max((line.count(d), bytes([d])) for d in _DELIMITERS)
    if end != -1 and n and b"\x01" not in line:
        names = [line[a:b] for a, b in _cells(line, delimiter)]
        if all(len(name) <= _NAME_MAX for name in names):
            labels = [_name_label(name.strip()) for name in names]
            header = (delimiter, labels) if any(labels) else None
    t.memo[_HEADER_MEMO] = header
    return header


def _column(t: Text, s: int) -> Context | None:
    """The label of the column of the cell `s` is in, in a row of as many cells as the
    header has."""
    if s >= _HEADER_REACH or (header := _header(t)) is None:
        return None
    delimiter, labels = header
    start = t.raw.rfind(b"\n", 0, s) + 1
    end = t.raw.find(b"\n", s)
    line = t.raw[start:len(t.raw) if end == -1 else end].rstrip(b"\r")
    cells = _cells(line, delimiter)
    if start == 0 or len(cells) != len(labels):
        return None
    return next((labels[i] for i, (a, b) in enumerate(cells) if a <= s - start <= b), None)
