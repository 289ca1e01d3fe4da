"""What the words around a digit string say about it: a phone number (and whose), an id.

A bare or loosely grouped number (`41141707`, `912 345 678`) is a phone number only where
something says so: a phone word just before it (`Tel.:`, `Handy`, `teléfono`, `gsm`), the
JSON key its value is under (`msisdn`, `mobilePhone`, `telefono`), or the CSV header of
its column. A word also says which countries to read it by: `Handy` the German-speaking
ones, `gsm` Belgium and the Netherlands; English words all of phone_regions.LIKELY. An id
word (`order`, `invoice`, `Kundennummer`...) closer to the number than any phone word
says it is not one, whatever its shape.

The words are found by one Hyperscan pass over the few bytes before a number (~1 µs);
a regular expression of ~100 alternatives costs ~50 µs there.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import NamedTuple, cast

import hyperscan

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
_DB = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
_DB.compile(expressions=[w for w, _, _ in _VOCABULARY], ids=list(range(len(_VOCABULARY))),
            elements=len(_VOCABULARY), literal=True)
_SCRATCH = threading.local()  # a scratch space serves one scan at a time


def _is_letter(b: int) -> bool:
    return 0x61 <= b <= 0x7A or b >= 0x80


def _last_label(text: bytes) -> tuple[int, Context] | None:
    """The word of the vocabulary that ends last in `text` (lowercase), standing as a
    word; of two ending together the longer (`telefone` is Portuguese, not `telefon`)."""
    hits: list[tuple[int, int]] = []
    scratch = getattr(_SCRATCH, "scratch", None)
    if scratch is None:
        scratch = _SCRATCH.scratch = hyperscan.Scratch(_DB)
    _DB.scan(text, match_event_handler=lambda i, _s, e, *_: hits.append((i, e)), scratch=scratch)
    best: tuple[int, int, Context] | None = None
    for i, end in hits:
        word, stem, label = _VOCABULARY[i]
        if end > len(word) and _is_letter(text[end - len(word) - 1]):
            continue
        if stem:
            while end < len(text) and _is_letter(text[end]):
                end += 1
        else:
            end += end < len(text) and text[end] == 0x73  # a plural "s"
            if end < len(text) and _is_letter(text[end]):
                continue
        if best is None or (end, len(word)) > best[:2]:
            best = (end, len(word), label)
    return None if best is None else (best[0], best[2])


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
    found = _last_label(_WORD_BREAK.sub(b" ", name).lower())
    return None if found is None else found[1]


def phone_key(name: str) -> bool:
    """Whether a JSON key (or a column's name) says its values are phone numbers
    (`msisdn`, `customer_phone`; not `phone_id`), read as `label` reads a value's key."""
    found = _name_label(name.encode("utf-8", "surrogatepass")[-_KEY_MAX:])
    return found is not None and found.phone


def _in_text(window: bytes) -> Context | None:
    """A label right before the number: no digits and at most _FILLER bytes between (a
    JSON value's number at its start has no window: no scan)."""
    found = _last_label(window) if window else None
    if found is None:
        return None
    end, label = found
    filler = window[end:]
    return label if len(filler) <= _FILLER and _DIGIT.search(filler) is None else None


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
