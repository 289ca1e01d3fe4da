"""People: names, postal addresses and dates of birth, found by what names them.

A name, a street or a birth date has no shape that tells it from any other words or any
other date (no checksum, no prefix): what tells it is its label. So these detectors read
values where a key names a person, an address part or a birth date, in the languages
tollgate's users write keys in: a JSON key (the `key SOH value` the masker scans), a key
in text (`"last_name": "…"`, `Nachname: …`, `surname=…`, YAML), the header of a CSV
column; and dates right after a birth cue in prose ("born on", "geboren am", "né le",
"生まれ" after the date...).

A key is matched whole, after `normalise` (case, `_`, `-`, `.` and spaces ignored), or
as a role and a word (`customer_name`, `billing_address`): `ip_address`, `file_name`,
`tool_name` are no person's. Some keys say what their value is (`last_name`, `dob`,
`street`): any value is masked. Others are also the names of things (`name`, `nom`,
`ad`, `address`, `zip`): an OpenAI or MCP tool's `name`, a model's, a file's, a server's
`address`. Under those only a value of the kind's shape is masked (`Shape`).

Every key word is looked for by the one Hyperscan pass (prefilter.py) with what ends a
key after it (`:`, `=`, SOH, a quote, a delimiter), so a text without one costs each
detector a set lookup; the key is then read back from where the pass found its end.
"""

from __future__ import annotations

import csv
import enum
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from extproc.masking.detectors import Detector, HitGate, Text
from extproc.masking.prefilter import PASS, escaped


class Shape(enum.Enum):
    """What a value under a key must look like to be masked."""

    ANY = "any"  # anything but blanks: the key says what it is
    PERSON = "person"  # 2-4 capitalised words of letters, 2-4 CJK or Hangul characters
    ADDRESS = "address"  # words and a number: `221B Baker Street`, not `db.internal:5432`
    POSTCODE = "postcode"  # 3-10 digits and capitals with a digit: `10115`, `NW1 6XE`


def normalise(key: str) -> str:
    """A key as the vocabulary compares it: lowercase, without `_`, `-`, `.` and spaces."""
    return key.lower().translate(_DROPPED)


_DROPPED = str.maketrans("", "", "_-. \t")

# Keys by kind. Words are written as keys are, `_` where a key may have a separator (the
# pass finds `first_name`, `firstName`, `First Name`, `first-name` alike).
_NAMES: dict[str, Shape] = {
    **dict.fromkeys((
        # en (en_IN, en_AU, en_CA alike)
        "full_name", "first_name", "last_name", "surname", "given_name", "given_names",
        "family_name", "middle_name", "maiden_name", "forename", "forenames",
        "legal_name", "person_name", "cardholder_name", "card_holder_name",
        "account_holder_name", "name_on_card",
        # de
        "nachname", "vorname", "vornamen", "familienname", "geburtsname", "vor_und_nachname",
        # fr
        "prénom", "prenom", "nom_de_famille", "nom_complet", "nom_prenom", "prénoms",
        # es
        "apellido", "apellidos", "nombre_completo", "primer_apellido", "segundo_apellido",
        "nombre_y_apellidos",
        # it
        "cognome", "nome_completo", "nome_e_cognome",
        # nl
        "achternaam", "voornaam", "voornamen", "volledige_naam",
        # pl
        "imię", "imie", "nazwisko", "imię_i_nazwisko", "imie_i_nazwisko",
        # sv
        "efternamn", "förnamn", "fornamn", "fullständigt_namn",
        # pt
        "sobrenome", "apelido_de_família", "nome_próprio",
        # ja, ko, zh
        "氏名", "姓名", "フルネーム", "苗字", "名字", "姓", "名", "성명", "성함", "全名",
        # ru
        "фамилия", "отчество", "фио",
        # tr
        "soyadı", "soyadi", "soyad", "ad_soyad", "adı_soyadı", "adi_soyadi", "isim_soyisim",  # noqa: RUF001
        # he
        "שם_משפחה", "שם_פרטי", "שם_מלא",
    ), Shape.ANY),
    # Also the names of things: a tool, a model, a file, a product.
    **dict.fromkeys((
        "name", "names", "display_name", "nom", "nombre", "nome", "naam", "namn", "navn",
        "名前", "이름", "имя", "ad", "adı", "isim", "שם",  # noqa: RUF001
    ), Shape.PERSON),
}
_ADDRESSES: dict[str, Shape] = {
    **dict.fromkeys((
        "street", "street_address", "street_name", "street_line", "address_line",
        "house_number", "home_address", "postal_address", "mailing_address",
        "residential_address", "billing_street", "shipping_street",
        "straße", "strasse", "hausnummer", "anschrift", "wohnadresse", "wohnort_straße",
        "rue", "adresse_postale", "numéro_de_rue", "calle", "domicilio", "dirección_postale",
        "via_e_numero", "straat", "huisnummer", "ulica", "gatuadress", "gata", "rua",
        "logradouro", "住所", "番地", "주소", "도로명주소", "지번주소", "상세주소", "街道",
        "街道地址", "地址", "住址", "адрес", "улица", "sokak", "cadde",
        "כתובת", "רחוב",
    ), Shape.ANY),
    **dict.fromkeys((
        "postcode", "post_code", "postal_code", "zip", "zip_code", "zipcode", "plz",
        "postleitzahl", "code_postal", "código_postal", "codigo_postal",
        "postnummer", "kod_pocztowy", "cep", "郵便番号", "우편번호", "邮编", "邮政编码",
        "почтовый_индекс", "posta_kodu", "מיקוד", "pin_code", "pincode",
    ), Shape.POSTCODE),
    # A server's, a wallet's, a memory address as well as a home's.
    **dict.fromkeys((
        "address", "addr", "adresse", "dirección", "direccion", "indirizzo", "adres",
        "adress", "endereço", "endereco", "adresa",
    ), Shape.ADDRESS),
}
_BIRTH: dict[str, Shape] = dict.fromkeys((
    "dob", "d_o_b", "date_of_birth", "birth_date", "birthdate", "birthday", "born_on",
    "geburtsdatum", "geburtstag", "geb_datum", "date_de_naissance", "date_naissance",
    "fecha_de_nacimiento", "fecha_nacimiento", "data_di_nascita", "data_nascita",
    "geboortedatum", "data_urodzenia", "födelsedatum", "fodelsedatum", "födelsedag",
    "data_de_nascimento", "data_nascimento", "生年月日", "誕生日", "생년월일", "생일",
    "出生日期", "生日", "дата_рождения", "день_рождения", "doğum_tarihi", "dogum_tarihi",
    "תאריך_לידה",
), Shape.ANY)

# Keys that say what they hold only beside a key above of the same kind, in the same
# record: a city, a town or an Italian `via` is an address's part next to a street or a
# postcode (alone, a city is a shop's or a server's region as often); `nom`, `nombre`,
# `name` holding one word is a person's next to a surname (alone, one word is as often a
# product's). Each with the shape its values must have then.
_NAME_COMPANIONS: dict[str, Shape] = dict.fromkeys((
    "name", "display_name", "nom", "nombre", "nome", "naam", "namn", "navn", "名前", "이름",
    "имя", "ad", "adı", "isim", "שם",  # noqa: RUF001
), Shape.ANY)
_ADDRESS_COMPANIONS: dict[str, Shape] = {
    **dict.fromkeys((
        "city", "town", "ort", "stadt", "wohnort", "ville", "commune", "ciudad", "localidad",
        "municipio", "città", "citta", "comune", "località", "via", "plaats", "woonplaats",
        "stad", "ort_stad", "miasto", "miejscowość", "miejscowosc", "cidade", "município",
        "bairro", "市区町村", "市", "都道府県", "城市", "市区", "시", "시군구", "город",
        "населенный_пункт", "şehir", "sehir", "ilçe", "ilce", "עיר", "ישוב", "suburb",
        "address", "addr", "adresse", "dirección", "direccion", "indirizzo", "adres",
        "adress", "endereço", "endereco", "adresa",
    ), Shape.ANY),
    **dict.fromkeys(("cap", "индекс"), Shape.POSTCODE),
}
_COMPANION_REACH = 256  # bytes between a companion's key and its record's other key

# Who a key may be about, before a word of the vocabulary: `customer_name`,
# `billingAddress`, `patient_dob` (a role keeps its word's shape: `customer_name` is
# still the name of a company as often as a person's).
_ROLES = (
    "customer", "client", "user", "patient", "employee", "member", "contact", "guest",
    "person", "holder", "cardholder", "recipient", "sender", "owner", "applicant",
    "student", "passenger", "buyer", "seller", "subscriber", "account", "billing",
    "shipping", "delivery", "mailing", "home", "postal", "primary", "legal", "my",
    "kunde", "kunden", "rechnungs", "liefer", "wohn",
)


class _Vocabulary:
    """One detector's key words, by their normalised spelling; `whole_line`: a value
    after `key:` runs to the line's end (an address's commas are its own)."""

    def __init__(self, words: dict[str, Shape], whole_line: bool,
                 companions: dict[str, Shape] | None = None) -> None:
        self.words = {normalise(k): v for k, v in words.items()}
        self.companions = {normalise(k): v for k, v in (companions or {}).items()}
        self.whole_line = whole_line
        # The pass's id of every key word of both (`Text.hits`).
        self.pattern = PASS.add(_pattern({**words, **(companions or {})}), caseless=True)
        self._known: dict[tuple[str, bool], Shape | None] = {}
        self._companion: dict[tuple[str, bool], Shape | None] = {}

    def companion(self, key: str, label: bool = False) -> Shape | None:
        """The shape a key's values must have beside another key of this vocabulary
        (`_NAME_COMPANIONS`), or None: not a companion. A label in text is read from its
        last word (`… 28520 city=`: what reads a key back from `=` takes spaces in)."""
        if (known := self._companion.get((key, label), _UNKNOWN)) is not _UNKNOWN:
            return known  # type: ignore[return-value]
        if len(self._companion) > 4096:
            self._companion.clear()
        word = key.rpartition(" ")[2] if label else key
        found = self._companion[key, label] = next(
            (shape for form in _forms(normalise(word))
             if (shape := self.companions.get(form)) is not None), None)
        return found

    def alone(self, key: str) -> bool:
        """Whether a key says what its value is without another beside it (`last_name`,
        `street`; not `city`, nor `name`, a companion as well)."""
        return self.shape(key) is not None and self.companion(key) is None

    def shape(self, key: str, label: bool = False) -> Shape | None:
        """The shape a key's values must have, or None: not one of these keys. A label
        in text is read from its last words (`Patient full name:` is `full name`'s, `Please
        enter your name:` is `name`'s); a JSON key or a column's name is read whole. Keys
        repeat (every record's `name`): what one says is kept."""
        if (known := self._known.get((key, label), _UNKNOWN)) is not _UNKNOWN:
            return known  # type: ignore[return-value]
        if len(self._known) > 4096:
            self._known.clear()
        found = self._known[key, label] = self._read(key, label)
        return found

    def _read(self, key: str, label: bool) -> Shape | None:
        if not label:
            return self._of(normalise(key))
        words = key.split()
        for n in range(min(len(words), 4), 0, -1):
            if (found := self._of(normalise(" ".join(words[-n:])))) is not None:
                return found
        return None

    def _of(self, key: str) -> Shape | None:
        for form in _forms(key):
            if (found := self.words.get(form)) is not None:
                return found
            for role in _ROLES:
                if form.startswith(role) and (found := self.words.get(form[len(role):])):
                    return found
        return None


_UNKNOWN = object()


def _forms(key: str) -> Iterator[str]:
    """A normalised key, then without what numbers its lines (`address_line_1`, `street2`)
    and its plural."""
    yield key
    bare = key.rstrip("0123456789")
    bare = bare[:-4] if bare.endswith("line") and len(bare) > 4 else bare
    if bare != key:
        yield bare
    if len(bare) > 4 and bare.endswith("s"):
        yield bare[:-1]


# --- where a key ends -------------------------------------------------------------------

_SOH, _NUL = 0x01, 0x00
# After a key word: a line's number, then what ends a key (`:`, `=`, a full-width colon,
# SOH, a quote, or a header cell's delimiter or line end).
_KEY_TAIL = (rb"(?:[ _.\-]?line)?(?:[ _.\-]?[0-9])?"
             rb"(?:[\"']?[ \t]{0,4}(?::|=|\xef\xbc\x9a)|\x01|[\"']?(?:[,;\t|]|\r?\n))")
# What a key is made of (any byte of a non-ASCII letter too), read back with `rstrip`.
_KEY_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-. " + bytes(
    range(0x80, 0x100))
_KEY_MAX = 64
_FULLWIDTH_COLON = "：".encode()  # noqa: RUF001


def _pattern(spellings: Iterable[str]) -> bytes:
    """The pass's expression for keys ending in one of `spellings` (any case: ASCII by
    the flag, other scripts by their lower, title and upper forms)."""
    alternatives = set()
    for spelling in spellings:
        for form in {spelling, spelling.title(), spelling.upper(), spelling.capitalize()}:
            parts = [escaped(p.encode()) for p in form.split("_")]
            alternatives.add(rb"[ _.\-]?".join(parts))
    return rb"(?:%s)(?:e?s)?%s" % (b"|".join(sorted(alternatives)), _KEY_TAIL)


@dataclass(frozen=True, slots=True)
class _Key:
    """A key found in a text: its text, where its value may start, and how it is written."""

    text: str
    value: int
    how: str  # "json": a scanned JSON value; "quoted": `"k": "v"`; "line": `k: v`, `k=v`;
    #           "header": a delimited text's header cell


def _key_at(raw: bytes, end: int) -> _Key | None:
    """The key whose end the pass found at `end` (just past its separator)."""
    sep = raw[end - 1]
    if sep == _SOH:
        start = raw.rfind(b"\x00", 0, end - 1) + 1
        return _Key(_decode(raw[start : end - 1]), end, "json") if (
            end - 1 - start <= _KEY_MAX) else None
    if sep in b",;\t|\n":
        key_end = end - 1
        if max(raw.rfind(b"\x00", 0, key_end), raw.rfind(b"\x01", 0, key_end)) < raw.rfind(
                b"\n", 0, key_end):
            return None  # a header is the first line of its text
        if sep == 0x0A and key_end > 0 and raw[key_end - 1] == 0x0D:
            key_end -= 1
        how = "header"
    else:
        key_end = end - (len(_FULLWIDTH_COLON) if raw.endswith(_FULLWIDTH_COLON, 0, end) else 1)
        while key_end > 0 and raw[key_end - 1] in b" \t":
            key_end -= 1
        how = "line"
    quoted = key_end > 0 and raw[key_end - 1] in b"\"'"
    if quoted:
        key_end -= 1
        how = "quoted" if how == "line" and raw[key_end] == 0x22 else how
    before = raw[max(0, key_end - _KEY_MAX) : key_end]
    start = key_end - len(before) + len(before.rstrip(_KEY_BYTES))
    if quoted and (start == 0 or raw[start - 1] != raw[key_end]):
        return None  # a quote closing no key: `say "hello", name`
    if how == "header" and start > quoted and raw[start - 1 - quoted] not in b",;\t|\n\x01":
        return None  # not a whole cell: `221B Baker Street, London`
    return _Key(_decode(raw[start:key_end]).strip(), end, how)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


# --- values -------------------------------------------------------------------------------

_VALUE_MAX = 256
# A table's cell delimiters, in the order they are tried (named: see masking/compiled.py
# on bytes literals iterated in place).
_SEPARATORS = (b",", b";", b"\t", b"|")
_LINE_END = re.compile(rb"[\r\n\x00\x01]")
# Where a value written after a key on a line stops: a run of spaces, or what lists fields.
_FIELD_END = re.compile(rb"[,;|\t(\[{<]|  |\"")
_ASSIGNED_END = re.compile(rb"[\s&;,\"'\x00\x01]")
_QUOTED = re.compile(rb"\"((?:[^\"\\\x00\x01]|\\.){0,%d})\"|'([^'\x00\x01]{0,%d})'"
                     % (_VALUE_MAX, _VALUE_MAX))


def _value(raw: bytes, key: _Key, shape: Shape, whole_line: bool) -> tuple[int, int] | None:
    """Where the value after `key` is, trimmed of spaces: a JSON value whole; a quoted
    value's inside; after `=`, up to a space; after `:`, up to the line's end, or where a
    field ends (a comma, a run of spaces...) unless `whole_line` (an address's commas are
    its own). None when there is none."""
    pos = key.value
    if key.how == "json":
        end = raw.find(b"\x00", pos)
        return _trimmed(raw, pos, len(raw) if end == -1 else end)
    while pos < len(raw) and raw[pos] in b" \t":
        pos += 1
    if (quoted := _QUOTED.match(raw, pos)) is not None:
        group = 1 if quoted.start(1) != -1 else 2
        return _trimmed(raw, *quoted.span(group))
    if key.how == "quoted":
        return None  # `"zip": 94105`, `"name": null`: no string
    limit = min(len(raw), pos + _VALUE_MAX)
    if raw[key.value - 1] == 0x3D:  # `=`
        end = m.start() if (m := _ASSIGNED_END.search(raw, pos, limit)) else limit
    else:
        end = m.start() if (m := _LINE_END.search(raw, pos, limit)) else limit
        if not whole_line or shape is Shape.POSTCODE:
            end = m.start() if (m := _FIELD_END.search(raw, pos, end)) else end
    return _trimmed(raw, pos, end)


def _trimmed(raw: bytes, s: int, e: int) -> tuple[int, int] | None:
    while s < e and raw[s] in b" \t\r\n":
        s += 1
    while e > s and raw[e - 1] in b" \t\r\n.,;":
        e -= 1
    return (s, e) if e > s else None


# Name particles, which stay lowercase in names (`Ludwig van Beethoven`).
_PARTICLES = frozenset((
    "van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "la",
    "le", "ten", "ter", "bin", "ibn", "al", "y", "e", "zu",
))
# Words of titles of things, never of a person's name: `Google Cloud Storage`, `New Project`.
_THINGS = frozenset((
    "api", "app", "apps", "bot", "cloud", "cluster", "data", "database", "default", "demo",
    "dev", "group", "inc", "llc", "ltd", "gmbh", "corp", "company", "project", "prod",
    "production", "server", "service", "services", "storage", "system", "team", "test",
    "tool", "tools", "the", "of", "for", "and", "new", "my", "our", "your", "main",
    "manager", "admin", "user", "account", "file", "folder", "report", "document", "model",
    "agent", "assistant", "workflow", "pipeline", "search", "weather", "get", "set",
    "list", "create", "update", "delete", "read", "write", "query", "bank", "store",
    "shop", "street", "road", "avenue", "city", "hotel", "restaurant", "university",
    "school", "hospital", "department", "office", "center", "centre", "foundation",
    "enterprises", "industries", "corporation", "holdings", "partners", "labs", "systems",
    "solutions", "technologies", "international", "limited", "plc", "ag", "sa", "bv", "co",
    "associates", "consulting", "logistics", "airlines", "motors", "networks", "ventures",
))
_KANJI_KANA = r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]"
_HAN_KANA = re.compile(rf"{_KANJI_KANA}{{2,4}}|{_KANJI_KANA}{{1,3}}[ \u3000・]{_KANJI_KANA}{{1,3}}")
_HANGUL = re.compile(r"[\uac00-\ud7a3]{2,4}")
# Hebrew, Arabic: no capitals (an apostrophe or a geresh inside: `ח'ליל`)
_UNCASED = re.compile(
    r"[\u0590-\u05ff\u0600-\u06ff]+(?:['\u05f3\u2019][\u0590-\u05ff\u0600-\u06ff]*)?")


# Titles and degrees around a name (`Prof. Jens-Peter Geißler B.Sc.`, `Dipl.-Ing. …`):
# read past, as particles are (the model's reading, ner.py, takes them in too).
TITLES = frozenset((
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "herr", "frau", "dipl",
    "dipl-ing", "ing", "mag", "m", "mme", "mlle", "sr", "sra", "srta", "dott", "dssa",
    "sig", "dhr", "mevr", "pan", "pani", "hr", "fru", "jr", "sen", "jun", "md", "phd",
    "bsc", "msc", "ba", "ma", "mba", "llm", "dds", "ii", "iii", "iv", "univ", "rer", "nat",
    "med", "b.sc", "m.sc", "b.a", "m.a", "ph.d", "univ.prof", "b.eng", "m.eng", "dr.med",
    "dr.rer.nat", "dr.-ing",
))


def title_word(word: str) -> bool:
    """Whether a word is a title or a degree a name is written with (`Dr.`, `B.Sc.`)."""
    lower = word.lower()
    return lower.rstrip(".,") in TITLES or lower.strip(".,").replace(".-", "-") in TITLES


def person_shaped(value: str) -> bool:
    """Whether a value under a key that may name anything looks like a person's name:
    2-4 words of letters, each capitalised (but particles: `van`, `de`), none a word of a
    thing's title; or 2-4 Han/kana or Hangul characters (`山田 太郎`); or 2-4 words of an
    uncased script (Hebrew, Arabic). One word (`Alice`, `Atlas`) is as often a product's,
    a project's or a tool's name, and is left."""
    value = value.strip()
    ascii_only = value.isascii()
    if not ascii_only and (_HAN_KANA.fullmatch(value) or _HANGUL.fullmatch(value)):
        return True
    words = [w for w in value.split() if not title_word(w)]
    if not 2 <= len(words) <= 4:
        return False
    if not ascii_only and all(_UNCASED.fullmatch(w) for w in words):
        return True
    capitals = 0
    for word in words:
        if word.lower().rstrip(".,") in _THINGS:
            return False
        if word in _PARTICLES:
            continue
        if not _name_word(word):
            return False
        capitals += 1
    return capitals >= 2


def _name_word(word: str) -> bool:
    """`Smith`, `O'Brien`, `Jean-Luc`, `McDonald`, `J.`, `Żółć`, `Иванов`; not `gpt-4o`,
    `README.md`, `API`."""
    letters = word.replace("'", "").replace("’", "").replace("-", "").rstrip(".")  # noqa: RUF001
    if word.endswith(".") and len(word) == 2:  # an initial
        return word[0].isupper()
    return (letters.isalpha() and word[0].isupper() and len(letters) >= 2
            and not letters[1:].isupper())


_ADDRESS_NOT = re.compile(r"://|^/|@|^[\w.-]+:\d+$|^0x[0-9a-f]+$", re.IGNORECASE)
_SPACE_DIGIT = re.compile(r"\s.*[0-9]|[0-9].*\s", re.DOTALL)  # words, and a number
_WORD = re.compile(r"[^\W\d_]{3,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7a3]")


def address_shaped(value: str) -> bool:
    """Whether a value under `address` (a server's, a wallet's, a memory's as well as a
    home's) looks like a postal address: several words, one of them letters, one a
    number (`221B Baker Street`, `Calle Mayor 5, Madrid`), no URL, host:port, e-mail or
    hex; or words in CJK (`東京都千代田区1-1`)."""
    value = value.strip()
    if _ADDRESS_NOT.search(value):
        return False
    if not value.isascii() and _CJK.search(value):
        return True
    return (_SPACE_DIGIT.search(value) is not None and _WORD.search(value) is not None)


_POSTCODE = re.compile(r"(?=[A-Z0-9 -]*[0-9])[A-Z0-9][A-Z0-9 -]{1,8}[A-Z0-9]", re.ASCII)


def _shaped(shape: Shape, value: str) -> bool:
    if shape is Shape.ANY:
        return value.lower() not in _EMPTY
    if shape is Shape.PERSON:
        return person_shaped(value)
    if shape is Shape.ADDRESS:
        return address_shaped(value)
    return _POSTCODE.fullmatch(value.upper()) is not None and value.lower() not in _EMPTY


_EMPTY = frozenset(("null", "none", "n/a", "na", "-", "true", "false", "unknown", "[]", "{}"))

# --- delimited text -----------------------------------------------------------------------

# A header labels the cells of every row below it: in a text of its own, in a JSON value,
# in a `text/csv` body or a database's text rows (`Masker.mask_text` with a delimiter:
# `columns`). A stream's text past its first 512 bytes no longer holds the header: the
# stream gives its body's first line (`Text.head`), and the rows are read under it from
# the first line the text holds whole (`_head_cells`).
_CELL_CACHE = "people.cells"


def _cells(raw: bytes, start: int, stop: int, delimiter: bytes
           ) -> Iterator[tuple[int, int, int, int]]:
    """Row, column and span of each cell from `start` (a line's start) to `stop`, read as
    RFC 4180 writes them (quoted, `""` inside, or bare), a row a line: a quote opens no
    cell that runs past its line's end, so that a stream, which reads from a line's start
    (`_head_cells`), reads every row as the whole text does."""
    d = re.escape(delimiter)
    cell = _CELL_PATTERNS.get(delimiter) or _CELL_PATTERNS.setdefault(delimiter, re.compile(
        rb'[ ]*(?:"((?:[^"\x00\x01\r\n]|"")*)"(?=%s|\r?\n|[\x00\x01]|\Z)'
        rb'|([^\x00\x01%s\r\n]*))(%s|\r?\n|(?=[\x00\x01])|\Z)' % (d, d, d)))
    row = column = 0
    pos = start
    while pos < stop and (m := cell.match(raw, pos)) is not None and m.end() > pos:
        group = 1 if m.start(1) != -1 else 2
        yield row, column, *m.span(group)
        if m[3] == delimiter:
            column += 1
        else:
            row, column = row + 1, 0
            if not m[3]:
                return
        pos = m.end()


_CELL_PATTERNS: dict[bytes, re.Pattern[bytes]] = {}


@lru_cache(maxsize=256)
def _names_columns(head: bytes, words: _Vocabulary) -> bool:
    """Whether a stream's first line (`Text.head`) names a column of `words`: a header a
    later text's rows are read under (`_head_cells`)."""
    text = _decode(head.rstrip(b"\r"))
    return any(words.shape(name.strip()) is not None or words.companion(name.strip())
               is not None for sep in ",;\t|" if sep in text for name in text.split(sep))


def _head_cells(t: Text, words: _Vocabulary) -> Iterator[tuple[int, int]]:
    """The cells, in a stream's text that no longer holds its body's first line, under the
    columns that line (`Text.head`) names as a header, from the first line held whole."""
    first = t.raw.find(b"\n")
    if t.head is None or first == -1 or b"\x00" in t.raw or b"\x01" in t.raw:
        return  # not a table's text (a stream of JSON has no header line)
    head = t.head.rstrip(b"\r")
    for sep in _SEPARATORS:
        if sep in head:
            yield from _column_cells(t, head, sep, first + 1, len(t.raw), words)
            return


def _header_cells(t: Text, key: _Key, words: _Vocabulary) -> Iterator[tuple[int, int]]:
    """The cells under the header cell that ends at `key.value`: the key is a whole cell
    of the first line of its text (of its JSON value, in a document)."""
    raw = t.raw
    cell_end = key.value - 1  # the delimiter or the line's end after the key
    line_start = max(raw.rfind(b"\x00", 0, cell_end), raw.rfind(b"\x01", 0, cell_end)) + 1
    in_json = line_start > 0 and raw[line_start - 1] == _SOH
    if (not in_json and (line_start != 0 or t.head is not None)) or raw.find(
            b"\n", line_start, cell_end) != -1:
        return  # not the first line of its text (a stream's is `Text.head`: `_head_cells`)
    first = raw.find(b"\n", line_start)
    if first == -1:
        return
    header = raw[line_start:first].rstrip(b"\r")
    delimiter = raw[cell_end : cell_end + 1]
    seps = [d for d in _SEPARATORS if d in header]
    if not seps:
        return
    sep = delimiter if delimiter in seps else seps[0]
    stop = raw.find(b"\x00", first)
    stop = len(raw) if stop == -1 else stop
    yield from _column_cells(t, header, sep, first + 1, stop, words)


def _column_cells(t: Text, header: bytes, sep: bytes, start: int, stop: int,
                  words: _Vocabulary) -> Iterator[tuple[int, int]]:
    """The cells, from `start` to `stop`, of the columns `header` names with `words`,
    each of its column's shape."""
    names = [name.strip() for name in
             next(csv.reader([_decode(header)], delimiter=sep.decode()), [])]
    shapes = {i: shape for i, name in enumerate(names)
              if (shape := words.shape(name)) is not None}
    if any(w.alone(name) for w in _VOCABULARIES for name in names):  # a record's other key
        shapes |= {i: shape for i, name in enumerate(names)
                   if (shape := words.companion(name)) is not None}
    if not shapes:
        return
    raw = t.raw
    for _, column, s, e in _cells(raw, start, stop, sep):
        if ((shape := shapes.get(column)) is not None and (span := _trimmed(raw, s, e))
                and _shaped(shape, _decode(raw[span[0] : span[1]]))):
            yield span


# --- the detectors ------------------------------------------------------------------------


def _keyed(words: _Vocabulary) -> Callable[[Text], list[tuple[int, int]]]:
    """A find function: the values of the keys of `words` the pass found ends of."""

    def find(t: Text) -> list[tuple[int, int]]:
        raw = t.raw
        found: list[tuple[int, int]] = []
        for key, shape, companion in _keys(t, words):
            if key.how == "header":  # the header's cells decide (`_column_cells`)
                if shape is not None or companion is not None:
                    found += _header_cells(t, key, words)
                continue
            if companion is not None and _beside(_solid(t), key):
                shape = companion
            if shape is not None and (span := _value(raw, key, shape, words.whole_line)) \
                    and _shaped(shape, _decode(raw[span[0] : span[1]])):
                found.append(span)
        if t.head is not None:
            found += _head_cells(t, words)
        return found

    return find


_Keyed = tuple[_Key, Shape | None, Shape | None]
# Each detector's pattern and vocabulary, as `_detector` registers them.
_VOCABULARIES: list[_Vocabulary] = []


def _keys(t: Text, words: _Vocabulary) -> list[_Keyed]:
    """The keys of `words` the pass found, each with its shape alone and beside another
    (`_Vocabulary.companion`); read once a text."""
    name = f"people.{words.pattern}"
    memo = t.memo.get(name)
    if memo is None:
        memo = t.memo[name] = [
            (key, words.shape(key.text, key.how == "line"),
             words.companion(key.text, key.how == "line"))
            for end in dict.fromkeys(t.hits.get(words.pattern, ()))
            if (key := _key_at(t.raw, end)) is not None]
    return cast("list[_Keyed]", memo)


def _solid(t: Text) -> list[int]:
    """Where the keys that say what they hold alone end, of any of the three kinds: a
    city beside a person's name or birth date is theirs too."""
    memo = t.memo.get("people.solid")
    if memo is None:
        memo = t.memo["people.solid"] = sorted(
            key.value for words in _VOCABULARIES for key, shape, companion in _keys(t, words)
            if shape is not None and companion is None)
    return cast("list[int]", memo)


def _beside(solid: list[int], key: _Key) -> bool:
    """Whether a key that says what it holds alone is within `_COMPANION_REACH` of `key`,
    before or after it. A stream holds back a detector's `max_len`, which counts the
    reach after: a finding is released once what decides it has arrived."""
    i = bisect_left(solid, key.value - _COMPANION_REACH)
    return i < len(solid) and solid[i] <= key.value + _COMPANION_REACH


def _detector(name: str, entity: str, words: dict[str, Shape], *, whole_line: bool = False,
              companions: dict[str, Shape] | None = None,
              more: tuple[Callable[[Text], Iterable[tuple[int, int]]], tuple[int, ...]] | None
              = None) -> tuple[Detector, _Vocabulary]:
    """A detector of the values of `words`' keys (and what `more` finds where the pass
    found one of its ids)."""
    vocabulary = _Vocabulary(words, whole_line, companions)
    _VOCABULARIES.append(vocabulary)
    find = _keyed(vocabulary)
    ids = frozenset((vocabulary.pattern, *(more[1] if more else ())))
    if more is not None:
        keyed, other = find, more[0]

        def find(t: Text) -> list[tuple[int, int]]:
            return [*keyed(t), *other(t)]

    return Detector(name, entity, find,
                    max_len=_VALUE_MAX + (_COMPANION_REACH if companions else 0),
                    gate=HitGate(ids, lambda t: t.head is not None
                                 and _names_columns(t.head, vocabulary))), vocabulary


# --- birth cues in text -------------------------------------------------------------------

# Words after which a date is a birth date, lowercase. Before the date:
_BORN_BEFORE = (
    "born", "born on", "dob", "d.o.b.", "d.o.b", "date of birth", "birth date", "birthdate",
    "birthday", "geb.", "geboren", "geboren am", "geburtsdatum", "né le", "née le",
    "né(e) le", "né", "née", "date de naissance", "nacido el", "nacida el", "nacido",
    "nacida", "fecha de nacimiento", "nato il", "nata il", "nato", "nata",
    "data di nascita", "geboren op", "geboortedatum", "urodzony", "urodzona",
    "urodził się", "urodziła się", "data urodzenia", "ur.", "urodz.", "född", "födelsedatum",
    "nascido em",
    "nascida em", "data de nascimento", "出生于", "出生日期", "生年月日", "생년월일",
    "родился", "родилась", "дата рождения", "doğum tarihi", "doğdu", "נולד", "נולדה",
    "תאריך לידה", "יליד", "ילידת",
)
# After it: `1990年5月12日生まれ`, `1990年5月12日出生`, `1990년 5월 12일생`.
_BORN_AFTER = ("生まれ", "生", "出生", "생", "에 태어", "에 출생", "doğumlu",
               "г. р.", "г.р.", "года рождения")  # noqa: RUF001

_D = r"(?:0?[1-9]|[12][0-9]|3[01])"
_M = r"(?:0?[1-9]|1[0-2])"
_Y = r"(?:1[89][0-9]{2}|20[0-9]{2})"
_MONTH = r"[^\W\d_]{3,12}\.?"
_SP = r"[ \u00a0]"
_DATE = (
    rf"{_Y}[-/.]{_M}[-/.]{_D}|{_D}[-/.]{_M}[-/.](?:{_Y}|[0-9]{{2}})"
    rf"|{_M}[-/.]{_D}[-/.](?:{_Y}|[0-9]{{2}})|{_Y}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    rf"|{_D}(?:st|nd|rd|th|er|º)?\.?{_SP}(?:de{_SP})?{_MONTH},?{_SP}(?:de{_SP})?{_Y}"
    rf"|{_MONTH}{_SP}{_D}(?:st|nd|rd|th)?,?{_SP}{_Y}"
    rf"|{_Y}{_SP}?[年년.]{_SP}?{_M}{_SP}?[月월.]{_SP}?{_D}{_SP}?[日일]?"
)
# Between a cue and its date: `:`, `on`, `am`, `le`, `el`, `il`, `op`, `em`, `the`, `ב-`.
_FILLER = r"[\s:=,\-–—\"'*()]{0,6}(?:(?:on|am|le|el|il|op|em|the|den|w)[\s:]{1,3}|ב-?)?"  # noqa: RUF001
_AFTER_CUE = re.compile(rf"{_FILLER}({_DATE})(?![0-9])", re.IGNORECASE)
_BEFORE_CUE = re.compile(rf"(?<![0-9])({_DATE}){_SP}?(?:に|에)?{_SP}?\Z", re.IGNORECASE)
_CUE_WINDOW = 64



def _cue(word: str) -> bytes:
    """`word` as the pass looks for it: a word of its own where it starts or ends with
    an ASCII letter (`born`, not `newborn`), in its three cases where it has others."""
    forms = b"|".join(escaped(f.encode()) for f in sorted({word, word.capitalize(), word.upper()}))
    return b"%s(?:%s)%s" % (rb"\b" if word[0].isascii() else b"", forms,
                           rb"\b" if word[-1].isascii() and word[-1].isalnum() else b"")


_BORN_BEFORE_ID = PASS.add(b"|".join(map(_cue, _BORN_BEFORE)), caseless=True)
_BORN_AFTER_IDS = tuple((PASS.literal(cue.encode()), len(cue.encode())) for cue in _BORN_AFTER)


def _born(t: Text) -> Iterator[tuple[int, int]]:
    """Dates right after a birth cue (`born on 12 May 1990`, `geboren am 12.05.1990`), or
    right before one written after it (`1990年5月12日生まれ`)."""
    raw = t.raw
    for end in t.hits.get(_BORN_BEFORE_ID, ()):
        window = raw[end : end + _CUE_WINDOW]
        text = window.decode("utf-8", "ignore")
        if (m := _AFTER_CUE.match(text)) is not None:
            s = end + len(text[: m.start(1)].encode())
            yield s, s + len(m[1].encode())
    for cue, length in _BORN_AFTER_IDS:
        for end in t.hits.get(cue, ()):
            start = end - length
            text = raw[max(0, start - _CUE_WINDOW) : start].decode("utf-8", "ignore")
            if (m := _BEFORE_CUE.search(text)) is not None:
                e = start - len(text[m.end(1):].encode())
                yield e - len(m[1].encode()), e


_BORN_IDS = (_BORN_BEFORE_ID, *(i for i, _ in _BORN_AFTER_IDS))

person_name, _NAME_WORDS = _detector("person_name", "PERSON", _NAMES,
                                     companions=_NAME_COMPANIONS)
postal_address, _ADDRESS_WORDS = _detector("postal_address", "ADDRESS", _ADDRESSES,
                                           whole_line=True, companions=_ADDRESS_COMPANIONS)
date_of_birth, _BIRTH_WORDS = _detector("date_of_birth", "DATE_OF_BIRTH", _BIRTH,
                                        more=(_born, _BORN_IDS))

DETECTORS: tuple[Detector, ...] = (person_name, postal_address, date_of_birth)
_WORDS = {person_name.name: _NAME_WORDS, postal_address.name: _ADDRESS_WORDS,
          date_of_birth.name: _BIRTH_WORDS}


@lru_cache(maxsize=1024)
def number_key(key: str) -> bool:
    """Whether a JSON number under `key` is a person's datum (`{"zip": 94105}`,
    `{"dob": 19900512}`): masked as its digits, where other small numbers pass."""
    return any(words.shape(key) is not None for words in (_ADDRESS_WORDS, _BIRTH_WORDS))


@lru_cache(maxsize=64)
def columns(names: frozenset[str], delimiter: str) -> tuple[Detector, ...]:
    """The detectors of `names` (this module's) over a whole table, whose first line is
    its header (`Masker.mask_text` with a delimiter: a text/csv body, a database's text
    rows), however far down a cell is."""
    sep = delimiter.encode()

    def over(detector: Detector) -> Detector:
        words = _WORDS[detector.name]

        def find(t: Text) -> list[tuple[int, int]]:
            first = t.raw.find(b"\n")
            if first == -1:
                return []
            header = t.raw[:first].rstrip(b"\r")
            return list(_column_cells(t, header, sep, first + 1, len(t.raw), words))

        return Detector(detector.name, detector.entity, find, max_len=0)

    return tuple(over(d) for d in DETECTORS if d.name in names)
