"""A labelled set for masking accuracy: seeded texts whose every secret and personal datum
is a known span, and texts that hold none though they look as if they did.

Three groups, each a list of `Sample` (a text and the spans a masker must cover):

- personal data from Faker in thirteen locales, in four carriers as a gateway sees them:
  sentences in the locale's language (the field named by a word of that language), JSON
  documents and CSV tables under keys of that language or English, and log lines
  (`key=value` after a timestamp). Types: e-mail, phone, card, IBAN, IP and a national
  identifier of the locale (SSN, NINO, Steuer-ID, NIR, DNI/NIE, codice fiscale, BSN, CPF,
  Aadhaar, personnummer, PESEL, HETU, AHV). Names appear unlabelled, as context.
- vendor secrets, built from each vendor's documented format with random bodies, in
  `.env` files, JSON and YAML configuration, log lines and sentences.
- hard negatives: numbers and identifiers that look like the above and are not (Luhn-valid
  timestamps, ISBNs, git SHAs, UUIDs, versions, order and tracking numbers, prices,
  coordinates, dates...), in the same four carriers.

Everything derives from one seed: the same seed gives the same set, byte for byte, with
the Faker version pinned in the test extras. No code of tollgate is used to build it, so
that the set stays an independent judge of the detectors.
"""

from __future__ import annotations

import base64
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from faker import Faker

SEED = 2026


@dataclass(frozen=True, slots=True)
class Span:
    """Characters `start:end` of a sample's text are one datum of `kind`."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One text; `origin` is its locale, vendor or hard-negative kind."""

    text: str
    spans: tuple[Span, ...]
    carrier: str
    origin: str


@dataclass(frozen=True, slots=True)
class LabelledSet:
    personal: list[Sample]
    secrets: list[Sample]
    negatives: list[Sample]


# The kinds of labels, by category: national identifiers and secrets are one category
# each (a detector of any national identifier or secret covers them), reported per kind.
PERSONAL = ("email", "phone", "credit_card", "iban", "ip_address")
NATIONAL_IDS = ("us_ssn", "uk_nino", "de_tax_id", "fr_nir", "es_nif", "es_nie",
                "it_fiscal_code", "nl_bsn", "br_cpf", "in_aadhaar", "se_personnummer",
                "pl_pesel", "fi_hetu", "ch_ahv")
SECRET = "secret:"  # a secret's kind is SECRET + vendor
CATEGORIES = (*PERSONAL, "national_id")


def category(kind: str) -> str:
    """The category a label of `kind` is counted in: a PERSONAL kind, national_id or secret."""
    if kind in NATIONAL_IDS:
        return "national_id"
    return "secret" if kind.startswith(SECRET) else kind


class _Builder:
    """A text assembled piece by piece, each labelled piece's span recorded as it is added."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._spans: list[Span] = []
        self._length = 0

    def text(self, piece: str) -> _Builder:
        self._parts.append(piece)
        self._length += len(piece)
        return self

    def value(self, piece: str, kind: str) -> _Builder:
        self._spans.append(Span(self._length, self._length + len(piece), kind))
        return self.text(piece)

    def sample(self, carrier: str, origin: str) -> Sample:
        return Sample("".join(self._parts), tuple(self._spans), carrier, origin)


# --- national identifiers Faker lacks or writes as a placeholder ---------------------------


def _nino(rnd: random.Random) -> str:
    """A UK National Insurance number as HMRC allocates them (Faker's all start `ZZ`, the
    prefix HMRC never issues): no D F I Q U V, no O second, none of the reserved pairs."""
    first = "ABCEGHJKLMNPRSTWXYZ"
    while (prefix := rnd.choice(first) + rnd.choice(first.replace("O", ""))) in {
            "BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        pass
    number = f"{rnd.randrange(10**6):06d}"
    spaced = rnd.random() < 0.5
    body = f"{prefix} {number[:2]} {number[2:4]} {number[4:]} " if spaced else prefix + number
    return body + rnd.choice("ABCD")


def _steuer_id(rnd: random.Random) -> str:
    """A German tax id (Steuerliche Identifikationsnummer): 11 digits, no leading zero,
    one digit twice or three times among the first ten but never three in a row (ELSTER
    issues none such), an ISO 7064 MOD 11,10 check digit."""
    while True:
        head = [rnd.randint(1, 9)] + [rnd.randrange(10) for _ in range(9)]
        repeats = sorted(head.count(d) for d in set(head))
        in_a_row = any(a == b == c for a, b, c in zip(head, head[1:], head[2:], strict=False))
        if (repeats[-1] in (2, 3) and repeats.count(repeats[-1]) == 1
                and repeats[-2:-1] != [2] and not in_a_row):
            break
    return "".join(map(str, head)) + str(mod11_10(head))


def mod11_10(digits: list[int]) -> int:
    """ISO 7064 MOD 11,10's check digit (the Steuer-ID's)."""
    product = 10
    for d in digits:
        product = ((d + product) % 10 or 10) * 2 % 11
    return (11 - product) % 10


def _nif(rnd: random.Random, nie: str) -> str:
    """A Spanish DNI (NIF of a person), or with `nie` (X, Y or Z) a foreigner's NIE: the
    number, then the letter of its remainder mod 23 (an NIE's prefix counts as 0, 1, 2).
    Faker's own draw from the process's global `random`, which no seed reaches."""
    number = rnd.randrange(10**8) if not nie else rnd.randrange(10**7)
    body = f"{number:08d}" if not nie else f"{nie}{number:07d}"
    value = number + "XYZ".index(nie) * 10**7 if nie else number
    return body + "TRWAGMYFPDXBNJZSQVHLCKE"[value % 23]


def _d5(j: int, k: int) -> int:
    """The dihedral group D5's product, Verhoeff's multiplication table."""
    if j < 5:
        return (j + k) % 5 + 5 * (k >= 5)
    return 5 + (j - k) % 5 if k < 5 else (j - k) % 5


_VERHOEFF_P = [list(range(10)), [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
for _ in range(6):
    _VERHOEFF_P.append([_VERHOEFF_P[1][d] for d in _VERHOEFF_P[-1]])


def _aadhaar(rnd: random.Random) -> str:
    """An Aadhaar number as UIDAI issues them: 12 digits, not starting with 0 or 1, the
    last a Verhoeff check digit (Faker's are random: most fail it)."""
    head = [rnd.randint(2, 9)] + [rnd.randrange(10) for _ in range(10)]
    c = 0
    for i, d in enumerate(reversed(head)):
        c = _d5(c, _VERHOEFF_P[(i + 1) % 8][d])
    digits = "".join(map(str, head)) + str([0, 4, 3, 2, 1, 5, 6, 7, 8, 9][c])
    return _fours(digits) if rnd.random() < 0.5 else digits


# --- the locales --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Language:
    """Words of one language: what a sentence calls each field, the sentences, and keys."""

    words: dict[str, str]  # category -> how a sentence names that field
    frames: tuple[str, ...]  # with {name}, {word} and {value}
    keys: dict[str, str]  # category -> a JSON key, CSV header or log key


@dataclass(frozen=True)
class _Locale:
    code: str
    language: _Language
    ids: tuple[tuple[str, str, str, Callable[[Faker, random.Random], str]], ...]
    # each: kind, the word a sentence names it by, its key, how to make one
    ibans: bool = True  # False where Faker's are not IBANs (en_IN's: 21 characters, GB)

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES if self.ibans else tuple(c for c in CATEGORIES if c != "iban")


def _lang(words: str, keys: str, *frames: str) -> _Language:
    """A language from `|`-separated words and keys in the order of PERSONAL."""
    return _Language(dict(zip(PERSONAL, words.split("|"), strict=True)), frames,
                     dict(zip(PERSONAL, keys.split("|"), strict=True)))


_EN = _lang("email address|phone number|card number|IBAN|IP address",
            "email|phone|card_number|iban|ip",
            "Hi, this is {name}; my {word} is {value}.",
            "{name} asked us to change the {word} to {value} yesterday.",
            "Please confirm the {word} on file ({value}) before the call.")
_DE = _lang("E-Mail-Adresse|Telefonnummer|Kartennummer|IBAN|IP-Adresse",
            "email|telefon|kreditkarte|iban|ip_adresse",
            "Hallo, hier ist {name}, meine {word} lautet {value}.",
            "{name} hat die {word} gestern auf {value} geändert.",
            "Bitte prüfen Sie die {word} ({value}) vor dem Termin.")
_FR = _lang("adresse e-mail|numéro de téléphone|numéro de carte|IBAN|adresse IP",
            "courriel|telephone|carte|iban|adresse_ip",
            "Bonjour, c'est {name} ; mon {word} est {value}.",
            "{name} a changé le {word} hier : {value}.",
            "Merci de vérifier le {word} ({value}) avant l'appel.")
_ES = _lang("correo electrónico|teléfono|número de tarjeta|IBAN|dirección IP",
            "correo|telefono|tarjeta|iban|ip",
            "Hola, soy {name}; mi {word} es {value}.",
            "{name} cambió el {word} a {value} ayer.",
            "Por favor, confirme el {word} ({value}) antes de la llamada.")
_IT = _lang("indirizzo e-mail|numero di telefono|numero di carta|IBAN|indirizzo IP",
            "email|telefono|carta|iban|indirizzo_ip",
            "Ciao, sono {name}; il mio {word} è {value}.",
            "{name} ha aggiornato ieri il {word}: {value}.",
            "Verificare il {word} ({value}) prima della chiamata.")
_NL = _lang("e-mailadres|telefoonnummer|kaartnummer|IBAN|IP-adres",
            "email|telefoon|kaartnummer|iban|ip_adres",
            "Hallo, met {name}; mijn {word} is {value}.",
            "{name} heeft gisteren het {word} gewijzigd in {value}.",
            "Controleer het {word} ({value}) voor het gesprek.")
_PT = _lang("e-mail|telefone|número do cartão|IBAN|endereço IP",
            "email|telefone|cartao|iban|ip",
            "Olá, aqui é {name}; meu {word} é {value}.",
            "{name} atualizou ontem o {word} para {value}.",
            "Confirme o {word} ({value}) antes da ligação.")
_SV = _lang("e-postadress|telefonnummer|kortnummer|IBAN|IP-adress",
            "epost|telefon|kortnummer|iban|ip_adress",
            "Hej, det är {name}; mitt {word} är {value}.",
            "{name} ändrade {word} till {value} igår.",
            "Kontrollera {word} ({value}) före samtalet.")
_PL = _lang("adres e-mail|numer telefonu|numer karty|IBAN|adres IP",
            "email|telefon|numer_karty|iban|adres_ip",
            "Dzień dobry, tu {name}; mój {word} to {value}.",
            "{name} zmienił wczoraj {word} na {value}.",
            "Proszę sprawdzić {word} ({value}) przed rozmową.")
_FI = _lang("sähköpostiosoite|puhelinnumero|kortin numero|IBAN|IP-osoite",
            "sahkoposti|puhelin|kortti|iban|ip_osoite",
            "Hei, täällä {name}; {word} on {value}.",
            "{name} vaihtoi eilen {word}: {value}.",
            "Tarkista {word} ({value}) ennen puhelua.")


def _ssn(f: Faker, _r: random.Random) -> str:
    return str(f.ssn())


LOCALES: tuple[_Locale, ...] = (
    _Locale("en_US", _EN, (("us_ssn", "SSN", "ssn", _ssn),)),
    _Locale("en_GB", _EN, (("uk_nino", "National Insurance number", "ni_number",
                            lambda _f, r: _nino(r)),)),
    _Locale("en_IN", _EN, (("in_aadhaar", "Aadhaar number", "aadhaar",
                            lambda _f, r: _aadhaar(r)),), ibans=False),
    _Locale("de_DE", _DE, (("de_tax_id", "Steuer-ID", "steuer_id",
                            lambda _f, r: _steuer_id(r)),)),
    _Locale("de_CH", _DE, (("ch_ahv", "AHV-Nummer", "ahv_nr", _ssn),)),
    _Locale("fr_FR", _FR, (("fr_nir", "numéro de sécurité sociale", "nir", _ssn),)),
    _Locale("es_ES", _ES, (("es_nif", "DNI", "dni", lambda _f, r: _nif(r, "")),
                           ("es_nie", "NIE", "nie", lambda _f, r: _nif(r, r.choice("XYZ"))))),
    _Locale("it_IT", _IT, (("it_fiscal_code", "codice fiscale", "codice_fiscale", _ssn),)),
    _Locale("nl_NL", _NL, (("nl_bsn", "BSN", "bsn", _ssn),)),
    _Locale("pt_BR", _PT, (("br_cpf", "CPF", "cpf", lambda f, _r: str(f.cpf())),)),
    _Locale("sv_SE", _SV, (("se_personnummer", "personnummer", "personnummer", _ssn),)),
    _Locale("pl_PL", _PL, (("pl_pesel", "PESEL", "pesel", lambda f, _r: str(f.pesel())),)),
    _Locale("fi_FI", _FI, (("fi_hetu", "henkilötunnus", "hetu", _ssn),)),
)

# English keys a document in any language may use instead of its own.
_ENGLISH_KEYS = {"email": ("email", "e_mail", "contact_email"), "phone": ("phone", "msisdn",
                 "mobile", "tel"), "credit_card": ("card", "pan", "cc_number"), "iban": (
                 "iban", "bank_account"), "ip_address": ("ip", "client_ip", "remote_addr"),
                 "national_id": ("tax_id", "national_id", "id_number")}


class _Person:
    """One person's data in one locale: each value made once, as Faker writes it in that
    locale, sometimes in the grouped form people type (cards and IBANs in fours)."""

    def __init__(self, locale: _Locale, fake: Faker, rnd: random.Random) -> None:
        self.name = str(fake.name())
        kind, self.id_word, self.id_key, make = rnd.choice(locale.ids)
        phone = str(fake.phone_number())
        self.phone, _, extension = phone.partition("x")  # an extension is not the number
        self.extension = f"x{extension}" if extension else ""
        card = str(fake.credit_card_number())
        iban = str(fake.iban())
        grouped = rnd.random() < 0.3
        self.values: dict[str, tuple[str, str]] = {  # category -> (kind, value)
            "email": ("email", str(rnd.choice((fake.email, fake.free_email,
                                               fake.company_email))())),
            "phone": ("phone", self.phone),
            "credit_card": ("credit_card", _fours(card) if grouped and len(card) == 16
                            else card),
            "iban": ("iban", _fours(iban) if grouped else iban),
            "ip_address": ("ip_address", str(fake.ipv4_public() if rnd.random() < 0.6
                                             else fake.ipv6())),
            "national_id": (kind, make(fake, rnd)),
        }


def _fours(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def _timestamp(rnd: random.Random) -> datetime:
    return datetime(2023, 1, 1) + timedelta(seconds=rnd.randrange(3 * 365 * 86400))


def _log_time(rnd: random.Random) -> str:
    t = _timestamp(rnd) + timedelta(milliseconds=rnd.randrange(1000))
    return t.isoformat(timespec="milliseconds") + "Z"


def _cell(value: str) -> str:
    """A CSV cell as RFC 4180 writes it: quoted where it holds a comma."""
    return f'"{value}"' if "," in value else value


def _word(locale: _Locale, person: _Person, cat: str) -> str:
    return person.id_word if cat == "national_id" else locale.language.words[cat]


def _key(locale: _Locale, person: _Person, cat: str, rnd: random.Random) -> str:
    if rnd.random() < 0.4:
        return rnd.choice(_ENGLISH_KEYS[cat])
    return person.id_key if cat == "national_id" else locale.language.keys[cat]


def _sentence(locale: _Locale, p: _Person, cat: str, rnd: random.Random) -> Sample:
    frame = rnd.choice(locale.language.frames)
    before, _, after = frame.format(name=p.name, word=_word(locale, p, cat),
                                    value="\x00").partition("\x00")
    kind, value = p.values[cat]
    b = _Builder().text(before).value(value, kind)
    if cat == "phone":
        b.text(p.extension)
    return b.text(after).sample("sentence", locale.code)


def _json(locale: _Locale, p: _Person, n: int, rnd: random.Random) -> Sample:
    """A customer record as an API returns it, keys in the locale's language or English."""
    b = _Builder().text(f'{{"id": {100000 + n}, "name": "{p.name}", ')
    for cat in rnd.sample(locale.categories, k=rnd.randint(3, len(locale.categories))):
        kind, value = p.values[cat]
        b.text(f'"{_key(locale, p, cat, rnd)}": "').value(value, kind).text('", ')
    return b.text(f'"created_at": "{_log_time(rnd)}", "active": true}}').sample(
        "json", locale.code)


def _csv(locale: _Locale, people: list[_Person], rnd: random.Random) -> Sample:
    """An export with a header row: a column per category, a row per person."""
    cats = rnd.sample(locale.categories, k=4)
    b = _Builder().text(",".join(["name", *(_key(locale, people[0], c, rnd) for c in cats)]))
    for p in people:
        b.text(f"\n{p.name}")
        for cat in cats:
            kind, value = p.values[cat]
            quote = '"' * ("," in value)
            b.text("," + quote).value(value, kind).text(quote)
    return b.text("\n").sample("csv", locale.code)


def _log(locale: _Locale, p: _Person, rnd: random.Random) -> Sample:
    """Application log lines: a timestamp, a level, an event, then `key=value` pairs."""
    b = _Builder()
    events = ("user.login", "profile.update", "payment.created", "kyc.check")
    for cats in (("email", "ip_address"), ("phone", "national_id"),
                 (rnd.choice(("credit_card", "iban")[: 1 + locale.ibans]),)):
        request = uuid.UUID(int=rnd.getrandbits(128), version=4)
        b.text(f"{_log_time(rnd)} INFO {rnd.choice(events)} request_id={request}")
        for cat in cats:
            kind, value = p.values[cat]
            quoted = " " in value
            b.text(f" {_key(locale, p, cat, rnd)}=" + '"' * quoted).value(value, kind)
            b.text('"' * quoted)
        b.text(f" latency_ms={rnd.randint(2, 900)}\n")
    return b.sample("log", locale.code)


def personal_samples(seed: int = SEED, per_locale: int = 12) -> list[Sample]:
    """Per locale: `per_locale` sentences of each category, `per_locale` JSON documents
    and log excerpts, and `per_locale // 3` CSV tables of five rows."""
    out: list[Sample] = []
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale.code)
        fake.seed_instance(seed + i)
        rnd = random.Random(seed * 100 + i)

        def person(loc: _Locale = locale, f: Faker = fake, r: random.Random = rnd) -> _Person:
            return _Person(loc, f, r)

        for n in range(per_locale):
            out += (_sentence(locale, person(), cat, rnd) for cat in locale.categories)
            out.append(_json(locale, person(), n, rnd))
            out.append(_log(locale, person(), rnd))
            if n % 3 == 0:
                out.append(_csv(locale, [person() for _ in range(5)], rnd))
    return out


# --- vendor secrets -----------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "_-"
_HEX = "0123456789abcdef"


@dataclass(frozen=True)
class _Vendor:
    """A vendor's secret formats: each makes (text before, secret, text after), where the
    text around is part of the credential's usual form but not the secret (a webhook's
    URL, a connection string's other fields)."""

    name: str
    env: str  # the variable it is usually kept in
    formats: tuple[Callable[[random.Random], tuple[str, str, str]], ...]
    bearer: bool = True  # sent as `Authorization: Bearer ...`


def _body(rnd: random.Random, alphabet: str, n: int) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _fmt(*pieces: str | tuple[str, int]) -> Callable[[random.Random], tuple[str, str, str]]:
    """A format: literal pieces and (alphabet, length) random ones."""
    def make(rnd: random.Random) -> tuple[str, str, str]:
        return "", "".join(p if isinstance(p, str) else _body(rnd, *p) for p in pieces), ""
    return make


def _around(before: str, fmt: Callable[[random.Random], tuple[str, str, str]], after: str
            ) -> Callable[[random.Random], tuple[str, str, str]]:
    return lambda rnd: (before, fmt(rnd)[1], after)


_DIG = string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_B64 = _ALNUM + "+/"
_B32 = string.ascii_uppercase + "234567"

# Formats as each vendor documents them (prefixes, lengths, alphabets).
VENDORS: tuple[_Vendor, ...] = (
    _Vendor("github", "GITHUB_TOKEN", (
        *(_fmt(f"gh{c}_", (_ALNUM, 36)) for c in "pousr"),
        _fmt("github_pat_", (_ALNUM, 22), "_", (_ALNUM, 59)))),
    _Vendor("gitlab", "GITLAB_TOKEN", (
        _fmt("glpat-", (_URLSAFE, 20)), _fmt("glpat-", (_URLSAFE, 27), ".01.", (_URLSAFE, 9)),
        _fmt("gldt-", (_URLSAFE, 20)), _fmt("glrt-", (_URLSAFE, 20)))),
    _Vendor("slack", "SLACK_BOT_TOKEN", (
        _fmt("xoxb-", (_DIG, 12), "-", (_DIG, 13), "-", (_ALNUM, 24)),
        _fmt("xoxp-", (_DIG, 12), "-", (_DIG, 12), "-", (_DIG, 13), "-", (_HEX, 32)),
        _fmt("xapp-1-A", (_UPPER_ALNUM, 10), "-", (_DIG, 13), "-", (_HEX, 64)),
        _around("https://hooks.slack.com/services/",
                _fmt("T", (_UPPER_ALNUM, 10), "/B", (_UPPER_ALNUM, 10), "/", (_ALNUM, 24)), ""))),
    _Vendor("stripe", "STRIPE_SECRET_KEY", (
        _fmt("sk_live_", (_ALNUM, 24)), _fmt("sk_live_", (_ALNUM, 99)),
        _fmt("rk_live_", (_ALNUM, 24)), _fmt("sk_test_", (_ALNUM, 24)),
        _fmt("whsec_", (_ALNUM, 32)))),
    _Vendor("openai", "OPENAI_API_KEY", (
        _fmt("sk-proj-", (_URLSAFE, 156)), _fmt("sk-", (_ALNUM, 20), "T3BlbkFJ", (_ALNUM, 20)),
        _fmt("sk-svcacct-", (_URLSAFE, 156)), _fmt("sk-admin-", (_URLSAFE, 156)))),
    _Vendor("anthropic", "ANTHROPIC_API_KEY", (
        _fmt("sk-ant-api03-", (_URLSAFE, 93), "AA"),
        _fmt("sk-ant-admin01-", (_URLSAFE, 93), "AA"))),
    _Vendor("aws", "AWS_ACCESS_KEY_ID", (
        _fmt("AKIA", (_B32, 16)), _fmt("ASIA", (_B32, 16))), bearer=False),
    _Vendor("aws_secret", "AWS_SECRET_ACCESS_KEY", (_fmt((_B64, 40)),), bearer=False),
    _Vendor("google", "GOOGLE_API_KEY", (_fmt("AIza", (_URLSAFE, 35)),
                                         _fmt("GOCSPX-", (_URLSAFE, 28))), bearer=False),
    _Vendor("npm", "NPM_TOKEN", (_fmt("npm_", (_ALNUM, 36)),)),
    _Vendor("sendgrid", "SENDGRID_API_KEY", (
        _fmt("SG.", (_URLSAFE, 22), ".", (_URLSAFE, 43)),)),
    _Vendor("huggingface", "HF_TOKEN", (_fmt("hf_", (string.ascii_letters, 34)),)),
    _Vendor("twilio", "TWILIO_API_KEY", (_fmt("SK", (_HEX, 32)),), bearer=False),
    _Vendor("mailgun", "MAILGUN_API_KEY", (
        _fmt("key-", (_HEX, 32)), _fmt((_HEX, 32), "-", (_HEX, 8), "-", (_HEX, 8))),
        bearer=False),
    _Vendor("azure_storage", "AZURE_STORAGE_CONNECTION_STRING", (
        lambda rnd: ("DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey=",
                     base64.b64encode(rnd.randbytes(64)).decode(),  # 88 characters, `==`
                     ";EndpointSuffix=core.windows.net"),), bearer=False),
)

_SECRET_CARRIERS = ("env", "json", "yaml", "log", "sentence")


def _secret_sample(vendor: _Vendor, carrier: str, rnd: random.Random) -> Sample:
    before, secret, after = rnd.choice(vendor.formats)(rnd)
    kind, key = SECRET + vendor.name, vendor.env.lower()
    b = _Builder()
    if carrier == "env":
        b.text(f"NODE_ENV=production\nPORT={rnd.randint(3000, 9000)}\n{vendor.env}={before}")
        b.value(secret, kind).text(f"{after}\nLOG_LEVEL=info\n")
    elif carrier == "json":
        b.text(f'{{"service": "billing", "{key}": "{before}').value(secret, kind)
        b.text(f'{after}", "timeout": {rnd.randint(5, 60)}}}')
    elif carrier == "yaml":
        b.text(f"service: billing\ncredentials:\n  {key}: {before}").value(secret, kind)
        b.text(f"{after}\n  region: eu-west-1\n")
    elif carrier == "log" and vendor.bearer:
        b.text(f'{_log_time(rnd)} DEBUG http.request method=POST headers={{"Authorization": '
               f'"Bearer {before}').value(secret, kind).text(f'{after}"}} status=200\n')
    elif carrier == "log":
        b.text(f"{_log_time(rnd)} DEBUG config.loaded {key}={before}").value(secret, kind)
        b.text(f"{after} pid={rnd.randint(100, 99999)}\n")
    else:
        b.text(f"I rotated the {vendor.env.replace('_', ' ').lower()} this morning; the new "
               f"one is {before}").value(secret, kind).text(f"{after}, please update CI.")
    return b.sample(carrier, vendor.name)


def secret_samples(seed: int = SEED, per_vendor: int = 40) -> list[Sample]:
    rnd = random.Random(seed + 1)
    return [_secret_sample(v, _SECRET_CARRIERS[i % len(_SECRET_CARRIERS)], rnd)
            for v in VENDORS for i in range(per_vendor)]


# --- hard negatives -----------------------------------------------------------------------


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _luhn_timestamp(rnd: random.Random) -> str:
    """yyyymmddhhmmss that passes Luhn, as a card detector without context would take it."""
    while not _luhn_ok(value := _timestamp(rnd).strftime("%Y%m%d%H%M%S")):
        pass
    return value


def _isbn(rnd: random.Random) -> str:
    body = f"978{rnd.randint(0, 1)}{rnd.randrange(10**8):08d}"
    check = -sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10
    digits = body + str(check)
    sep = rnd.choice("- ")
    return sep.join((digits[:3], digits[3], digits[4:7], digits[7:12], digits[12]))


def _isbn10(rnd: random.Random) -> str:
    body = f"{rnd.randrange(10**9):09d}"
    check = -sum((10 - i) * int(c) for i, c in enumerate(body)) % 11
    return f"{body[0]}-{body[1:4]}-{body[4:9]}-{'X' if check == 10 else check}"


def _ean13(rnd: random.Random) -> str:
    body = f"{rnd.choice(('400', '500', '590', '762', '871'))}{rnd.randrange(10**9):09d}"
    return body + str(-sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10)


def _not_luhn_16(rnd: random.Random) -> str:
    while _luhn_ok(value := f"{rnd.randrange(10**15, 10**16)}"):
        pass
    return _fours(value) if rnd.random() < 0.5 else value


def _coordinates(rnd: random.Random) -> str:
    lat, lon = rnd.uniform(-80, 80), rnd.uniform(-179, 179)
    if rnd.random() < 0.3:
        minutes, seconds = "\u2032", "\u2033"  # prime, double prime
        return " ".join(f"{int(abs(x))}°{rnd.randint(0, 59)}{minutes}{rnd.randint(0, 59)}"
                        f"{seconds}{hemispheres[x < 0]}" for x, hemispheres in ((lat, "NS"),
                                                                              (lon, "EW")))
    return f"{lat:.6f}, {lon:.6f}" if rnd.random() < 0.5 else f"{lat:.4f},{lon:.4f}"


def _date(rnd: random.Random) -> str:
    t = _timestamp(rnd)
    return rnd.choice((t.strftime("%Y-%m-%d"), t.strftime("%d.%m.%Y"), t.strftime("%m/%d/%Y"),
                       t.strftime("%d %b %Y %H:%M"), t.isoformat(timespec="milliseconds") + "Z",
                       str(int(t.timestamp())), str(int(t.timestamp() * 1000))))


def _price(rnd: random.Random) -> str:
    amount = rnd.randint(1, 10**7) / 100
    us = f"{amount:,.2f}"
    eu = us.replace(",", " ").replace(".", ",").replace(" ", ".")
    return rnd.choice((f"${us}", f"{eu} €", f"EUR {eu}", f"£{us}", f"{us} USD",
                       f"CHF {us.replace(',', chr(39))}", f"¥{int(amount * 100):,}"))


def _version(rnd: random.Random) -> str:
    major, minor, patch = rnd.randint(0, 30), rnd.randint(0, 300), rnd.randint(0, 9999)
    return rnd.choice((f"v{major}.{minor}.{patch}", f"{major}.{minor}.{patch}-rc.{minor % 9}",
                       f"version {major}.{minor}.{patch}",
                       f"10.0.{rnd.randint(10000, 26000)}.{rnd.randint(256, 6000)}"))


def _order(rnd: random.Random) -> str:
    return rnd.choice((f"ORD-{rnd.randrange(10**9):09d}", f"#{rnd.randrange(10**7)}",
                       f"{rnd.randint(100, 999)}-{rnd.randrange(10**7):07d}-"
                       f"{rnd.randrange(10**7):07d}",
                       f"INV-{rnd.randint(2020, 2026)}-{rnd.randrange(10**6):06d}",
                       f"ref {rnd.randrange(10**8, 10**9)}"))


def _tracking(rnd: random.Random) -> str:
    return rnd.choice((f"1Z{_body(rnd, _UPPER_ALNUM, 6)}{rnd.randrange(10**10):010d}",
                       _fours(f"{rnd.randrange(10**11, 10**12)}"),
                       _fours(f"9400{rnd.randrange(10**18):018d}"),
                       f"JD{rnd.randrange(10**18):018d}"))


def _base64_blob(rnd: random.Random) -> str:
    return base64.b64encode(rnd.randbytes(rnd.randint(20, 90))).decode()


# Kind -> (how to make one, the word that names it in a carrier).
NEGATIVES: dict[str, tuple[Callable[[random.Random], str], str]] = {
    "luhn_timestamp": (_luhn_timestamp, "build"),
    "isbn": (lambda r: _isbn(r) if r.random() < 0.7 else _isbn10(r), "ISBN"),
    "ean13": (_ean13, "barcode"),
    "git_sha": (lambda r: f"{r.getrandbits(160):040x}"[: r.choice((7, 12, 40))], "commit"),
    "uuid": (lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)), "request_id"),
    "version": (_version, "release"),
    "order_number": (_order, "order"),
    "tracking_number": (_tracking, "tracking"),
    "price": (_price, "total"),
    "coordinates": (_coordinates, "location"),
    "date": (_date, "date"),
    "not_luhn_16": (_not_luhn_16, "reference"),
    "base64_blob": (_base64_blob, "payload"),
    "sk_word": (lambda r: r.choice(("skeleton", "task-force", "desk-lamp", "risk-free",
                                    "ask-me")) + f" {r.randint(1, 99)}", "note"),
}


def _negative_sample(kind: str, carrier: str, rnd: random.Random) -> Sample:
    make, word = NEGATIVES[kind]
    value, key = make(rnd), word.lower().replace(" ", "_")
    text = {
        "sentence": f"The {word} is {value}, see the ticket for details.",
        "json": f'{{"{key}": "{value}", "status": "ok", "count": {rnd.randint(1, 99)}}}',
        "csv": f"{key},status\n{_cell(value)},ok\n",
        "log": f"{_log_time(rnd)} INFO job.done {key}=\"{value}\" ok=true\n",
    }[carrier]
    return Sample(text, (), carrier, kind)


_CARRIERS = ("sentence", "json", "csv", "log")


def negative_samples(seed: int = SEED, per_kind: int = 100) -> list[Sample]:
    rnd = random.Random(seed + 2)
    return [_negative_sample(kind, _CARRIERS[i % len(_CARRIERS)], rnd)
            for kind in NEGATIVES for i in range(per_kind)]


def labelled_set(seed: int = SEED) -> LabelledSet:
    return LabelledSet(personal_samples(seed), secret_samples(seed), negative_samples(seed))
