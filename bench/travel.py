"""A labelled set of "where data travels": secrets and personal data in the shapes agents
move them around, each sample labelled with the values a masker must cover.

Classes (`CLASSES`), each a list of `Sample` whose `origin` is the row it is reported in:

- header: credentials in header-shaped text (header dumps, curl command lines, raw HTTP
  printed in logs, Python and JS dicts of headers, JSON header objects); origin: shape.
- url: values in URLs (userinfo, query tokens, fragments, AWS/GCS/Azure presigned URLs)
  in prose, logs, JSON and markdown; origin: shape.
- secret: secrets in configuration carriers (.env, ~/.aws/credentials, .netrc, .npmrc,
  .pypirc, docker config.json, kubeconfig, YAML/JSON/TOML/INI, logs); origin: kind.
- national_id: valid national identifiers of 21 countries (check digits computed here) in
  sentences of the local language with the local cue word, JSON under local keys, CSV,
  `key=value` forms and logs, and bare where the format validates itself; origin: country.
- personal: phone numbers (national formats whose region only the context gives), IBAN,
  US SSN, IP addresses, e-mail; origin: kind.
- people_structured: names, postal addresses and their parts, dates of birth under local
  keys in 20 locales (JSON, YAML, CSV, `key=value`), and birth dates after a local birth
  cue in text; origin: locale.
- people_text: English prose naming people and addresses, with no key: what only a
  named-entity model can find; origin: template.
- people_world: prose in ten other languages naming people (names of that language's
  Faker locale), with no key; origin: locale.
- csv_locale: CSV tables of people in the 20 locales under local headers; origin: locale.
- negative: hard negatives, no label (trace ids, hashes, UUIDs, versions, timestamps,
  order numbers, URLs and headers with nothing secret, products, places, `name` keys that
  name tools, models and files); origin: kind.

A label is the value itself (the token, not `Bearer `; the session cookie's value, not
`theme=dark` beside it). Everything derives from one seed: the same seed gives the same
set, byte for byte, with the Faker version pinned in the test extras. No code of tollgate
is used, so that the set stays an independent judge of the masker.
"""

# The locales' own letters and punctuation (Turkish, Cyrillic, fullwidth CJK) are the point.
# ruff: noqa: RUF001

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, partial
from urllib.parse import quote

from faker import Faker

from bench.labelled import (
    VENDORS,
    Sample,
    _aadhaar,
    _Builder,
    _fours,
    _log_time,
    _nif,
    _nino,
    _steuer_id,
)

SEED = 4117
CLASSES = ("header", "url", "secret", "national_id", "personal", "people_structured",
           "people_text", "csv_locale", "negative", "people_world")

_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"
_HEX = string.digits + "abcdef"
_UPPER = string.ascii_uppercase
_LOWER_DIGITS = string.ascii_lowercase + string.digits

Piece = tuple[str, str | None]  # text, and the kind of label it is (None: not a label)
Make = Callable[[random.Random], str]


def _chars(rnd: random.Random, alphabet: str, n: int) -> str:
    return "".join(rnd.choices(alphabet, k=n))


def _put(b: _Builder, pieces: Sequence[Piece]) -> _Builder:
    for text, kind in pieces:
        if kind is None:
            b.text(text)
        else:
            b.value(text, kind)
    return b


def _joined(head: list[Piece], parts: list[list[Piece]], sep: str) -> list[Piece]:
    out = list(head)
    for i, part in enumerate(parts):
        out += [(sep, None)] * bool(i) + part
    return out


# --- secrets, in their real shapes --------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(rnd: random.Random) -> str:
    alg = rnd.choice(("HS256", "RS256", "ES256"))
    issued = 1_700_000_000 + rnd.randrange(50_000_000)
    claims = {"sub": str(rnd.randrange(10**6)), "iat": issued, "exp": issued + 3600,
              "scope": rnd.choice(("read", "read write", "openid profile email"))}
    sig = rnd.randbytes(256 if alg == "RS256" else 32 if alg == "HS256" else 64)
    return ".".join((_b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()),
                     _b64url(json.dumps(claims, separators=(",", ":")).encode()), _b64url(sig)))


def _opaque(rnd: random.Random) -> str:
    """An access token that is not a JWT: Google's, GitHub's OAuth, Dropbox's, or plain."""
    return rnd.choice((lambda: "ya29." + _chars(rnd, _URLSAFE, 150),
                       lambda: "gho_" + _chars(rnd, _ALNUM, 36),
                       lambda: "sl.B" + _chars(rnd, _URLSAFE, 130),
                       lambda: _chars(rnd, _ALNUM, rnd.choice((32, 40, 64)))))()


def _refresh(rnd: random.Random) -> str:
    return rnd.choice((lambda: "1//0" + _chars(rnd, _URLSAFE, 100),
                       lambda: _chars(rnd, _ALNUM, 64),
                       lambda: "rt_" + _chars(rnd, _URLSAFE, 48)))()


def _flask_session(rnd: random.Random) -> str:
    return (_b64url(json.dumps({"user_id": rnd.randrange(10**5)}).encode()) + "."
            + _chars(rnd, _URLSAFE, 6) + "." + _chars(rnd, _URLSAFE, 27))


# Session cookies as Django, PHP, Java, Express, Flask, Laravel, Rails and ASP.NET set them.
_SESSIONS: tuple[tuple[str, Make], ...] = (
    ("sessionid", lambda r: _chars(r, _LOWER_DIGITS, 32)),
    ("PHPSESSID", lambda r: _chars(r, "0123456789abcdefghijklmnopqrstuv", 26)),
    ("JSESSIONID", lambda r: _chars(r, "0123456789ABCDEF", 32)),
    ("connect.sid", lambda r: "s%3A" + _chars(r, _URLSAFE, 32) + "." + _chars(r, _ALNUM, 43)),
    ("session", _flask_session),
    ("laravel_session", lambda r: "eyJpdiI6" + _chars(r, _ALNUM, 180) + "%3D"),
    ("_app_session", lambda r: _chars(r, _ALNUM, 120) + "--" + _chars(r, _HEX, 40)),
    ("ASP.NET_SessionId", lambda r: _chars(r, "abcdefghijklmnopqrstuvwxyz012345", 24)),
)


def _session(rnd: random.Random) -> tuple[str, str]:
    """A session cookie's name and value."""
    name, make = rnd.choice(_SESSIONS)
    return name, make(rnd)


def aws_key_id(rnd: random.Random, temporary: bool = False) -> str:
    return ("ASIA" if temporary else "AKIA") + _chars(rnd, _UPPER + "234567", 16)


def _aws_secret(rnd: random.Random) -> str:
    return _chars(rnd, _ALNUM + "+/", 40)


def aws_session_token(rnd: random.Random) -> str:
    """An STS session token: long base64 that starts as STS's do."""
    start = rnd.choice(("IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE"))
    return start + base64.b64encode(rnd.randbytes(rnd.randint(280, 700))).decode().rstrip("=")


_WORDS = ("river", "Falcon", "orange", "Tiger", "maple", "Copper", "winter", "Quartz")


def _password(rnd: random.Random) -> str:
    """A password as people and generators choose them (no `@ : / ? #`)."""
    return rnd.choice((
        lambda: rnd.choice(_WORDS) + rnd.choice(_WORDS) + str(rnd.randint(10, 9999))
        + rnd.choice("!$*-_."),
        lambda: _chars(rnd, _ALNUM + "!$*-_.~", rnd.randint(14, 24)),
        lambda: _chars(rnd, _ALNUM, rnd.randint(10, 16))))()


def _generic(rnd: random.Random) -> str:
    return rnd.choice((lambda: _chars(rnd, _ALNUM, rnd.choice((32, 48, 50, 64))),
                       lambda: _chars(rnd, _HEX, 64),
                       lambda: base64.b64encode(rnd.randbytes(32)).decode()))()


_USERS = ("deploy", "ci-bot", "svc_reports", "jenkins", "admin", "api", "backup", "grafana")


def _basic(rnd: random.Random) -> str:
    return base64.b64encode(f"{rnd.choice(_USERS)}:{_password(rnd)}".encode()).decode()


_VENDOR_FORMATS = {v.name: v.formats for v in VENDORS}


def vendor_key(rnd: random.Random, name: str) -> str:
    """A key of one of bench/labelled.py's vendors, standing alone (no webhook URL around)."""
    while True:
        before, secret, after = rnd.choice(_VENDOR_FORMATS[name])(rnd)
        if not before and not after:
            return secret


# --- header ------------------------------------------------------------------------------

Header = tuple[str, list[Piece]]


def _cookie(rnd: random.Random) -> list[Piece]:
    """A Cookie header's value: a session among cookies that hold nothing secret."""
    name, value = _session(rnd)
    pairs: list[list[Piece]] = [[(c, None)] for c in rnd.sample(
        ("theme=dark", "lang=en-US", "consent=1", "tz=Europe%2FBerlin", "sidebar=collapsed"),
        k=rnd.randint(0, 3))]
    pairs.insert(rnd.randint(0, len(pairs)), [(f"{name}=", None), (value, "session_cookie")])
    return _joined([], pairs, "; ")


def _aws4(rnd: random.Random) -> list[Piece]:
    return [("AWS4-HMAC-SHA256 Credential=", None), (aws_key_id(rnd), "aws_access_key_id"),
            ("/20250301/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=",
             None), (_chars(rnd, _HEX, 64), "signature")]


def _labelled(prefix: str, make: Make, kind: str) -> Callable[[random.Random], list[Piece]]:
    return lambda r: [(prefix, None)] * bool(prefix) + [(make(r), kind)]


_SECRET_HEADERS: tuple[tuple[str, Callable[[random.Random], list[Piece]]], ...] = (
    ("Authorization", _labelled("Bearer ", lambda r: jwt(r) if r.random() < 0.4 else _opaque(r),
                                "bearer_token")),
    ("Authorization", _labelled("Basic ", _basic, "basic_auth")),
    ("Proxy-Authorization", _labelled("Basic ", _basic, "basic_auth")),
    ("Authorization", _labelled("token ", lambda r: vendor_key(r, "github"), "api_key")),
    ("Cookie", _cookie),
    ("X-Amz-Security-Token", _labelled("", aws_session_token, "aws_session_token")),
    ("X-Api-Key", _labelled("", lambda r: _chars(r, _ALNUM, 40), "api_key")),
    ("Ocp-Apim-Subscription-Key", _labelled("", lambda r: _chars(r, _HEX, 32), "api_key")),
    ("X-Auth-Token", _labelled("", _opaque, "auth_token")),
    ("PRIVATE-TOKEN", _labelled("", lambda r: vendor_key(r, "gitlab"), "api_key")),
    ("X-Vault-Token", _labelled("", lambda r: "hvs." + _chars(r, _URLSAFE, 90), "auth_token")),
    ("api-key", _labelled("", lambda r: _chars(r, _HEX, 32), "api_key")),
    ("X-Goog-Api-Key", _labelled("", lambda r: vendor_key(r, "google"), "api_key")),
    ("Authorization", _aws4),
)


def _secret_header(rnd: random.Random) -> Header:
    name, make = rnd.choice(_SECRET_HEADERS)
    return name, make(rnd)


def _set_cookie(rnd: random.Random) -> Header:
    name, value = _session(rnd)
    return ("Set-Cookie", [(f"{name}=", None), (value, "session_cookie"),
                           ("; Path=/; HttpOnly; Secure; SameSite=Lax", None)])


_HOSTS = ("api.example.com", "internal.corp.example", "billing.example.org", "localhost:8080",
          "gateway.prod.example.net")
_AGENTS = ("python-requests/2.32.3", "curl/8.5.0", "axios/1.7.2", "Go-http-client/2.0",
           "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0.6367.91")


def _plain_headers(rnd: random.Random, host: str) -> list[Header]:
    choices = [("User-Agent", rnd.choice(_AGENTS)), ("Accept", "application/json"),
               ("Content-Type", "application/json; charset=utf-8"),
               ("Accept-Encoding", "gzip, deflate, br"), ("Cache-Control", "no-cache"),
               ("Connection", "keep-alive"), ("X-Request-Id", str(_uuid(rnd))),
               ("Content-Length", str(rnd.randint(2, 4000)))]
    chosen: list[Header] = [(k, [(v, None)]) for k, v in rnd.sample(choices, k=rnd.randint(2, 4))]
    return [("Host", [(host, None)]), *chosen]


def _uuid(rnd: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rnd.getrandbits(128), version=4)


def _header_lines(b: _Builder, headers: list[Header], sep: str, prefix: str = "") -> None:
    for name, pieces in headers:
        _put(b.text(f"{prefix}{name}: "), pieces).text(sep)


@dataclass(frozen=True)
class _Request:
    host: str
    path: str
    method: str
    headers: list[Header]


def _header_dump(b: _Builder, r: _Request, rnd: random.Random) -> None:
    verbose = rnd.random() < 0.3  # curl -v's `> ` before each request line
    if verbose:
        b.text(f"> {r.method} {r.path} HTTP/1.1\n")
    elif rnd.random() < 0.5:
        b.text("Request headers:\n")
    _header_lines(b, r.headers, "\n", "> " if verbose else "")


def _curl(b: _Builder, r: _Request, rnd: random.Random) -> None:
    b.text(f"curl -sS -X {r.method} 'https://{r.host}{r.path}'")
    for name, pieces in r.headers:
        if name == "Host":  # curl sends the URL's
            continue
        if name == "Cookie" and rnd.random() < 0.5:
            _put(b.text(" \\\n  -b '"), pieces).text("'")
        else:
            _put(b.text(f" \\\n  {rnd.choice(('-H', '--header'))} '{name}: "), pieces).text("'")
    if rnd.random() < 0.4:
        b.text(f" \\\n  -u {rnd.choice(_USERS)}:").value(_password(rnd), "password")
    b.text(" \\\n  -d '{\"limit\": 10}'\n" if r.method != "GET" else "\n")


def _http_log(b: _Builder, r: _Request, rnd: random.Random) -> None:
    if rnd.random() < 0.5:  # http.client's debug output: the bytes as Python writes them
        b.text(f"send: b'{r.method} {r.path} HTTP/1.1\\r\\n")
        _header_lines(b, r.headers, "\\r\\n")
        b.text("\\r\\n'\nreply: 'HTTP/1.1 200 OK\\r\\n'\n")
    else:
        b.text(f"{_log_time(rnd)} DEBUG upstream response HTTP/1.1 200 OK\n")
        _header_lines(b, [*r.headers[:2], _set_cookie(rnd), *r.headers[2:]], "\n")


def _py_dict(b: _Builder, r: _Request, rnd: random.Random) -> None:
    b.text(rnd.choice(("headers = ", ">>> r.request.headers\n", "DEBUG:client:headers=")) + "{")
    for i, (name, pieces) in enumerate(r.headers):
        _put(b.text(", " * bool(i) + f"'{name}': '"), pieces).text("'")
    b.text("}\n")


def _js_object(b: _Builder, r: _Request, _rnd: random.Random) -> None:
    b.text(f"const res = await fetch('https://{r.host}{r.path}', {{\n  method: '{r.method}',\n"
           "  headers: {\n")
    for name, pieces in r.headers:
        _put(b.text(f"    {name if name.isalpha() else repr(name)}: '"), pieces).text("',\n")
    b.text("  },\n});\n")


def _json_headers(b: _Builder, r: _Request, rnd: random.Random) -> None:
    """HTTP/2's lower-case names, as a tracing or audit record holds them."""
    b.text(f'{{"method": "{r.method}", "url": "https://{r.host}{r.path}", "headers": {{')
    for i, (name, pieces) in enumerate(r.headers):
        _put(b.text(", " * bool(i) + f'"{name.lower()}": "'), pieces).text('"')
    b.text(f'}}, "status": {rnd.choice((200, 201, 401))}}}')


HEADER_SHAPES: dict[str, Callable[[_Builder, _Request, random.Random], None]] = {
    "header_dump": _header_dump, "curl": _curl, "http_log": _http_log, "py_dict": _py_dict,
    "js_object": _js_object, "json_headers": _json_headers,
}


def _header_sample(rnd: random.Random, shape: str) -> Sample:
    host = rnd.choice(_HOSTS)
    headers = _plain_headers(rnd, host) + [_secret_header(rnd) for _ in range(rnd.randint(1, 2))]
    rnd.shuffle(headers)
    path = rnd.choice(("/v1/orders?page=2", "/api/users/me", "/v2/chat/completions", "/graphql"))
    b = _Builder()
    HEADER_SHAPES[shape](b, _Request(host, path, rnd.choice(("GET", "POST", "PUT")), headers), rnd)
    return b.sample(shape, shape)


# --- url ---------------------------------------------------------------------------------


def _userinfo(rnd: random.Random) -> list[Piece]:
    pw = quote(_password(rnd), safe="")
    scheme, user, host = rnd.choice((
        ("https", rnd.choice(_USERS), "files.example.com/export.csv"),
        ("postgres", "app", "db.internal:5432/prod"),
        ("postgresql", "analytics", "10.0.3.12:5432/warehouse?sslmode=require"),
        ("mysql", "root", "mysql.svc.cluster.local:3306/shop"),
        ("redis", "", "cache.internal:6379/0"),
        ("mongodb+srv", "reporting", "cluster0.ab1cd.mongodb.net/app?retryWrites=true"),
        ("amqp", "guest", "rabbit.internal:5672/%2F"),
        ("ftp", "backup", "ftp.example.org/nightly/")))
    if scheme == "https" and rnd.random() < 0.3:  # a token as the password of a git remote
        return [("https://x-access-token:", None), (vendor_key(rnd, "github"), "api_key"),
                ("@github.com/acme/payments.git", None)]
    return [(f"{scheme}://{user}:", None), (pw, "password"), (f"@{host}", None)]


_QUERY_SECRETS: tuple[tuple[str, str, Make], ...] = (
    ("access_token", "bearer_token", _opaque), ("access_token", "bearer_token", jwt),
    ("api_key", "api_key", lambda r: _chars(r, _ALNUM, 32)), ("apikey", "api_key", _generic),
    ("token", "auth_token", _opaque), ("key", "api_key", lambda r: vendor_key(r, "google")),
    ("sig", "signature", lambda r: quote(base64.b64encode(r.randbytes(32)).decode(), safe="")),
    ("code", "oauth_code", lambda r: "4%2F0A" + _chars(r, _URLSAFE, 70)),
    ("client_secret", "client_secret", lambda r: "GOCSPX-" + _chars(r, _URLSAFE, 28)),
    ("password", "password", lambda r: quote(_password(r), safe="")),
)
_PLAIN_PARAMS = ("page=2", "sort=asc", "limit=50", "utm_source=newsletter", "lang=en",
                 "format=json", "include=items", "client_id=web-app")


def _plain_params(rnd: random.Random) -> list[str]:
    out = rnd.sample(_PLAIN_PARAMS, k=rnd.randint(0, 3))
    if rnd.random() < 0.3:
        out.append(f"state={_chars(rnd, _HEX, 16)}")
    return out


def _query(rnd: random.Random) -> list[Piece]:
    host = rnd.choice(("https://api.example.com/v2/reports", "https://maps.example.net/js",
                       "https://app.example.io/oauth/callback", "http://10.1.2.3:9000/export"))
    params: list[list[Piece]] = [[(p, None)] for p in _plain_params(rnd)]
    for name, kind, make in rnd.sample(_QUERY_SECRETS, k=rnd.randint(1, 2)):
        params.insert(rnd.randint(0, len(params)), [(f"{name}=", None), (make(rnd), kind)])
    return _joined([(host + "?", None)], params, "&")


def _fragment(rnd: random.Random) -> list[Piece]:
    out: list[Piece] = [("https://app.example.com/callback#access_token=", None),
                        (_opaque(rnd), "bearer_token"), ("&token_type=Bearer&expires_in=3599",
                                                         None)]
    if rnd.random() < 0.6:
        out += [("&id_token=", None), (jwt(rnd), "id_token")]
    return [*out, (f"&state={_chars(rnd, _HEX, 16)}", None)]


def _aws_presigned(rnd: random.Random) -> list[Piece]:
    temporary = rnd.random() < 0.5
    out: list[Piece] = [
        (f"https://{rnd.choice(('acme-exports', 'prod-invoices', 'ml-datasets'))}.s3."
         f"{rnd.choice(('us-east-1', 'eu-west-1'))}.amazonaws.com/{rnd.randrange(10**6)}/"
         "report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=", None),
        (aws_key_id(rnd, temporary), "aws_access_key_id"),
        ("%2F20250301%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250301T101500Z"
         "&X-Amz-Expires=3600", None)]
    if temporary:
        out += [("&X-Amz-Security-Token=", None),
                (quote(aws_session_token(rnd), safe=""), "aws_session_token")]
    return [*out, ("&X-Amz-SignedHeaders=host&X-Amz-Signature=", None),
            (_chars(rnd, _HEX, 64), "signature")]


def _gcs_presigned(rnd: random.Random) -> list[Piece]:
    return [("https://storage.googleapis.com/acme-uploads/scans/" f"{rnd.randrange(10**6)}.png"
             "?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=uploader%40acme-prod.iam."
             "gserviceaccount.com%2F20250301%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date="
             "20250301T101500Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=",
             None), (_chars(rnd, _HEX, 512), "signature")]


def _azure_sas(rnd: random.Random) -> list[Piece]:
    sig = quote(base64.b64encode(rnd.randbytes(32)).decode(), safe="")
    return [(f"https://{rnd.choice(('acmelogs', 'prodbackups'))}.blob.core.windows.net/"
             "exports/2025/03/data.csv?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2025-03-02T10:00:00Z"
             "&st=2025-03-01T10:00:00Z&spr=https&sig=", None), (sig, "signature")]


URL_SHAPES: dict[str, Callable[[random.Random], list[Piece]]] = {
    "userinfo": _userinfo, "query": _query, "fragment": _fragment,
    "presigned_aws": _aws_presigned, "presigned_gcs": _gcs_presigned, "azure_sas": _azure_sas,
}


def _url_sample(rnd: random.Random, shape: str, carrier: str) -> Sample:
    url = URL_SHAPES[shape](rnd)
    b = _Builder()
    if carrier == "prose":
        before, after = rnd.choice((("Here is the download link: ", " (valid for an hour).\n"),
                                    ("I tried ", " but it returns 403, any idea?"),
                                    ("The job reads from ", " every night.")))
        _put(b.text(before), url).text(after)
    elif carrier == "log":
        _put(b.text(f"{_log_time(rnd)} INFO http.client GET "), url)
        b.text(f" status={rnd.choice((200, 302, 403))} duration_ms={rnd.randint(3, 900)}\n")
    elif carrier == "json":
        _put(b.text(f'{{"id": {rnd.randrange(10**5)}, "url": "'), url).text('", "ok": true}')
    else:  # markdown
        _put(b.text(rnd.choice(("See [the export](", "- [download link]("))), url)
        b.text(")\n" if rnd.random() < 0.7 else ") for details.\n")
    return b.sample(carrier, shape)


# --- secret ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SecretKind:
    make: Make
    keys: tuple[str, ...]  # the secret-ish keys it is kept under, lower snake case
    carriers: tuple[str, ...]  # besides the generic ones, which only a kind with keys has


_GENERIC_CARRIERS = ("dotenv", "yaml", "json", "toml", "ini", "log")

SECRET_KINDS: dict[str, _SecretKind] = {
    "aws_access_key_id": _SecretKind(aws_key_id, ("aws_access_key_id", "access_key_id"),
                                     ("aws_credentials",)),
    "aws_secret_access_key": _SecretKind(_aws_secret, ("aws_secret_access_key",
                                                       "secret_access_key"),
                                         ("aws_credentials",)),
    "aws_session_token": _SecretKind(aws_session_token, ("aws_session_token", "session_token"),
                                     ("aws_credentials", "sts_json")),
    "session_cookie": _SecretKind(lambda r: _session(r)[1], ("session_cookie", "session_id"),
                                  ("cookie_jar", "cookies_txt")),
    "generic_secret": _SecretKind(_generic, ("secret_key", "django_secret_key", "jwt_secret",
                                             "app_secret", "signing_key", "encryption_key",
                                             "webhook_secret", "api_secret", "master_key"), ()),
    "oauth_access_token": _SecretKind(_opaque, ("access_token", "oauth_token"), ("token_json",)),
    "oauth_refresh_token": _SecretKind(_refresh, ("refresh_token",), ("token_json",)),
    "bearer_opaque": _SecretKind(_opaque, ("bearer_token", "auth_token", "api_token"),
                                 ("kubeconfig", "auth_log")),
    "bearer_jwt": _SecretKind(jwt, ("id_token", "jwt", "token"), ("kubeconfig", "auth_log")),
    "basic_auth": _SecretKind(_basic, ("basic_auth", "auth", "http_basic"),
                              ("docker_config", "auth_log")),
    "netrc_password": _SecretKind(_password, (), ("netrc",)),
    "npm_token": _SecretKind(lambda r: vendor_key(r, "npm"), (), ("npmrc",)),
    "pypi_token": _SecretKind(lambda r: "pypi-AgEIcHlwaS5vcmc" + _chars(r, _URLSAFE, 150), (),
                              ("pypirc",)),
    **{f"vendor_{name}": _SecretKind(partial(vendor_key, name=name), keys, ())
       for name, keys in (("github", ("github_token", "gh_token")),
                          ("slack", ("slack_bot_token", "slack_token")),
                          ("stripe", ("stripe_secret_key", "stripe_api_key")),
                          ("openai", ("openai_api_key", "llm_api_key")),
                          ("gitlab", ("gitlab_token", "ci_job_token")))},
}

_NEUTRAL = (("node_env", "production"), ("port", "8080"), ("log_level", "info"),
            ("region", "eu-west-1"), ("database_host", "db.internal"), ("timeout_s", "30"),
            ("feature_flags", "search,export"))


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.title() for w in rest)


def _config(rnd: random.Random, carrier: str, entries: list[tuple[str, list[Piece]]]
            ) -> _Builder:
    """Key/value entries as one of the generic configuration carriers writes them."""
    b = _Builder()
    if carrier == "dotenv":
        for key, pieces in entries:
            _put(b.text(f"{key.upper()}="), pieces).text("\n")
    elif carrier == "yaml":
        b.text("app:\n  name: billing\n  settings:\n")
        for key, pieces in entries:
            _put(b.text(f"    {key}: "), pieces).text("\n")
    elif carrier == "json":
        camel = rnd.random() < 0.5
        for i, (key, pieces) in enumerate(entries):
            _put(b.text(("{" if not i else ", ") + f'"{_camel(key) if camel else key}": "'),
                 pieces).text('"')
        b.text("}")
    elif carrier in ("toml", "ini"):
        b.text(rnd.choice(("[default]\n", "[production]\n", "[service.billing]\n")))
        quote_mark = '"' if carrier == "toml" else ""
        for key, pieces in entries:
            _put(b.text(f"{key} = {quote_mark}"), pieces).text(f"{quote_mark}\n")
    else:  # log
        b.text(f"{_log_time(rnd)} DEBUG config.loaded")
        for key, pieces in entries:
            _put(b.text(f" {key}="), pieces)
        b.text(f" pid={rnd.randint(100, 99999)}\n")
    return b


def _aws_credentials(rnd: random.Random, kind: str, _value: str) -> _Builder:
    temporary = kind == "aws_session_token" or rnd.random() < 0.3
    b = _Builder().text(rnd.choice(("[default]\n", "[profile prod]\n", "[ci]\n")))
    b.text("aws_access_key_id = ").value(aws_key_id(rnd, temporary), "aws_access_key_id")
    b.text("\naws_secret_access_key = ").value(_aws_secret(rnd), "aws_secret_access_key")
    if temporary:
        b.text("\naws_session_token = ").value(aws_session_token(rnd), "aws_session_token")
    return b.text("\nregion = eu-west-1\noutput = json\n")


def _sts_json(rnd: random.Random, kind: str, value: str) -> _Builder:
    """`aws sts get-session-token`'s output."""
    b = _Builder().text('{"Credentials": {"AccessKeyId": "')
    b.value(aws_key_id(rnd, True), "aws_access_key_id").text('", "SecretAccessKey": "')
    b.value(_aws_secret(rnd), "aws_secret_access_key").text('", "SessionToken": "')
    return b.value(value, kind).text('", "Expiration": "2025-03-01T22:15:00+00:00"}}')


def _cookie_jar(rnd: random.Random, kind: str, value: str) -> _Builder:
    """A browser extension's cookie export."""
    b = _Builder().text(f'[{{"domain": ".example.com", "name": "{_session(rnd)[0]}", '
                        '"path": "/", "value": "')
    return b.value(value, kind).text('", "httpOnly": true, "secure": true}]')


def _cookies_txt(rnd: random.Random, kind: str, value: str) -> _Builder:
    b = _Builder().text("# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tFALSE\t1767225600\t"
                        "theme\tdark\n.example.com\tTRUE\t/\tTRUE\t1767225600\t"
                        f"{_session(rnd)[0]}\t")
    return b.value(value, kind).text("\n")


def _token_json(rnd: random.Random, kind: str, value: str) -> _Builder:
    """An OAuth token endpoint's answer: both tokens are labels, `value` is one of them."""
    access = value if kind == "oauth_access_token" else _opaque(rnd)
    refresh = value if kind == "oauth_refresh_token" else _refresh(rnd)
    b = _Builder().text('{"access_token": "').value(access, "oauth_access_token")
    b.text('", "token_type": "Bearer", "expires_in": 3599, "refresh_token": "')
    return b.value(refresh, "oauth_refresh_token").text('", "scope": "openid email"}')


def _kubeconfig(_rnd: random.Random, kind: str, value: str) -> _Builder:
    b = _Builder().text("apiVersion: v1\nkind: Config\nusers:\n- name: ci-deployer\n  user:\n"
                        "    token: ")
    return b.value(value, kind).text("\ncurrent-context: prod\n")


def _auth_log(rnd: random.Random, kind: str, value: str) -> _Builder:
    scheme = "Basic" if kind == "basic_auth" else "Bearer"
    b = _Builder().text(f"{_log_time(rnd)} DEBUG outgoing request POST https://"
                        f"{rnd.choice(_HOSTS)}/v1/sync Authorization: {scheme} ")
    return b.value(value, kind).text(f" attempt={rnd.randint(1, 3)}\n")


def _docker_config(_rnd: random.Random, kind: str, value: str) -> _Builder:
    b = _Builder().text('{"auths": {"https://index.docker.io/v1/": {"auth": "')
    return b.value(value, kind).text('"}}, "credsStore": ""}')


def _netrc(rnd: random.Random, kind: str, value: str) -> _Builder:
    host = rnd.choice(("api.heroku.com", "github.com", "artifactory.example.com"))
    if rnd.random() < 0.5:
        b = _Builder().text(f"machine {host} login {rnd.choice(_USERS)} password ")
        return b.value(value, kind).text("\n")
    b = _Builder().text(f"machine {host}\n  login {rnd.choice(_USERS)}\n  password ")
    return b.value(value, kind).text("\ndefault login anonymous password guest\n")


def _npmrc(_rnd: random.Random, kind: str, value: str) -> _Builder:
    b = _Builder().text("registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=")
    return b.value(value, kind).text("\nsave-exact=true\n")


def _pypirc(_rnd: random.Random, kind: str, value: str) -> _Builder:
    b = _Builder().text("[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n"
                        "password = ")
    return b.value(value, kind).text("\n")


# The carriers that are one tool's file, each in its own syntax: (rnd, kind, value).
SPECIAL_CARRIERS: dict[str, Callable[[random.Random, str, str], _Builder]] = {
    "aws_credentials": _aws_credentials, "sts_json": _sts_json, "cookie_jar": _cookie_jar,
    "cookies_txt": _cookies_txt, "token_json": _token_json, "kubeconfig": _kubeconfig,
    "auth_log": _auth_log, "docker_config": _docker_config, "netrc": _netrc, "npmrc": _npmrc,
    "pypirc": _pypirc,
}


def _secret_sample(rnd: random.Random, kind: str, n: int) -> Sample:
    spec = SECRET_KINDS[kind]
    carriers = spec.carriers + (_GENERIC_CARRIERS if spec.keys else ())
    carrier = carriers[n % len(carriers)]
    if carrier in _GENERIC_CARRIERS:
        entries: list[tuple[str, list[Piece]]] = [
            (k, [(v, None)]) for k, v in rnd.sample(_NEUTRAL, k=rnd.randint(1, 3))]
        entries.insert(rnd.randint(0, len(entries)),
                       (rnd.choice(spec.keys), [(spec.make(rnd), kind)]))
        b = _config(rnd, carrier, entries)
    else:
        b = SPECIAL_CARRIERS[carrier](rnd, kind, spec.make(rnd))
    return b.sample(carrier, kind)


# --- countries, languages, locales ------------------------------------------------------


def _digits(rnd: random.Random, n: int) -> list[int]:
    return [rnd.randrange(10) for _ in range(n)]


def _luhn_digit(body: Sequence[int]) -> int:
    """The digit that, appended, makes `body` pass Luhn."""
    total = sum(d if i % 2 else (2 * d - 9 if d > 4 else 2 * d)
                for i, d in enumerate(reversed(body)))
    return -total % 10


def _join(ds: Sequence[int]) -> str:
    return "".join(map(str, ds))


def _birth(rnd: random.Random) -> date:
    return date(1940, 1, 1) + timedelta(days=rnd.randrange(365 * 65))


def _us_ssn(rnd: random.Random) -> str:
    while (area := rnd.randint(1, 899)) == 666:
        pass
    ssn = f"{area:03d}{rnd.randint(1, 99):02d}{rnd.randint(1, 9999):04d}"
    return rnd.choice((f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}", f"{ssn[:3]} {ssn[3:5]} {ssn[5:]}"))


def _ca_sin(rnd: random.Random) -> str:
    body = [rnd.choice((1, 2, 3, 4, 5, 6, 7, 9)), *_digits(rnd, 7)]
    s = _join([*body, _luhn_digit(body)])
    return rnd.choice((f"{s[:3]}-{s[3:6]}-{s[6:]}", f"{s[:3]} {s[3:6]} {s[6:]}", s))


def _fr_nir(rnd: random.Random) -> str:
    born = _birth(rnd)
    dept = rnd.choice([d for d in range(1, 96) if d != 20])
    head = (f"{rnd.randint(1, 2)}{born.year % 100:02d}{born.month:02d}{dept:02d}"
            f"{rnd.randint(1, 990):03d}{rnd.randint(1, 999):03d}")
    key = f"{97 - int(head) % 97:02d}"
    if rnd.random() < 0.5:
        return head + key
    return " ".join((head[0], head[1:3], head[3:5], head[5:7], head[7:10], head[10:], key))


# The codice fiscale's values of a character in an odd position: 0-9 as A-J, then K-Z.
_CF_ODD_LETTERS = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10,
                   22, 25, 24, 23)
_CF_ODD = dict(zip(string.digits + _UPPER, _CF_ODD_LETTERS[:10] + _CF_ODD_LETTERS, strict=True))


def _it_fiscal_code(rnd: random.Random) -> str:
    consonants = "BCDFGLMNPRSTVZ"
    born = _birth(rnd)
    day = born.day + 40 * (rnd.random() < 0.5)
    head = (_chars(rnd, consonants, 3) + _chars(rnd, consonants, 3) + f"{born.year % 100:02d}"
            + "ABCDEHLMPRST"[born.month - 1] + f"{day:02d}"
            + rnd.choice(("H501", "F205", "L219", "G273", "A944", "D612", "F839")))
    total = sum(_CF_ODD[c] if i % 2 == 0 else int(c) if c.isdigit() else ord(c) - 65
                for i, c in enumerate(head))
    return head + chr(65 + total % 26)


def _nl_bsn(rnd: random.Random) -> str:
    while True:
        head = [rnd.randint(1, 9), *_digits(rnd, 7)]
        check = sum(d * w for d, w in zip(head, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return _join([*head, check])


def _pl_pesel(rnd: random.Random) -> str:
    born = _birth(rnd)
    month = born.month + 20 * (born.year >= 2000)
    head = [int(c) for c in f"{born.year % 100:02d}{month:02d}{born.day:02d}"] + _digits(rnd, 4)
    total = sum(d * w for d, w in zip(head, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3), strict=True))
    return _join([*head, -total % 10])


def _se_personnummer(rnd: random.Random) -> str:
    born = _birth(rnd)
    head = [int(c) for c in born.strftime("%y%m%d")] + _digits(rnd, 3)
    s = _join([*head, _luhn_digit(head)])
    return rnd.choice((f"{s[:6]}-{s[6:]}", f"{born.year // 100}{s[:6]}-{s[6:]}"))


def _au_tfn(rnd: random.Random) -> str:
    while True:
        head = [rnd.randint(1, 9), *_digits(rnd, 7)]
        last = sum(d * w for d, w in zip(head, (1, 4, 3, 7, 5, 8, 6, 9), strict=True)) % 11
        if last < 10:
            s = _join([*head, last])
            return rnd.choice((s, f"{s[:3]} {s[3:6]} {s[6:]}"))


def _br_cpf(rnd: random.Random) -> str:
    ds = _digits(rnd, 9)
    for n in (10, 11):
        ds.append(sum(d * w for d, w in zip(ds, range(n, 1, -1), strict=False)) * 10 % 11 % 10)
    s = _join(ds)
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}" if rnd.random() < 0.7 else s


_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"


def _mx_curp(rnd: random.Random) -> str:
    born = _birth(rnd)
    consonants = "BCDFGHJLMNPRSTVZ"
    head = (rnd.choice(consonants) + rnd.choice("AEIOU") + _chars(rnd, consonants, 2)
            + born.strftime("%y%m%d") + rnd.choice("HM")
            + rnd.choice(("DF", "JC", "NL", "PL", "VZ", "YN", "MC", "GT"))
            + _chars(rnd, consonants, 3)
            + (str(rnd.randrange(10)) if born.year < 2000 else rnd.choice(_UPPER)))
    total = sum(_CURP_ALPHABET.index(c) * (18 - i) for i, c in enumerate(head))
    return head + str(-total % 10)


def _jp_my_number(rnd: random.Random) -> str:
    body = _digits(rnd, 11)
    total = sum(d * (n + 1 if n <= 6 else n - 5) for n, d in enumerate(reversed(body), 1)) % 11
    s = _join([*body, 0 if total <= 1 else 11 - total])
    return rnd.choice((s, f"{s[:4]} {s[4:8]} {s[8:]}"))


def _kr_rrn(rnd: random.Random) -> str:
    born = _birth(rnd)
    head = ([int(c) for c in born.strftime("%y%m%d")]
            + [rnd.choice((1, 2) if born.year < 2000 else (3, 4))] + _digits(rnd, 5))
    total = sum(d * w for d, w in zip(head, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    s = _join([*head, (11 - total % 11) % 10])
    return f"{s[:6]}-{s[6:]}"


def _cn_resident_id(rnd: random.Random) -> str:
    head = (rnd.choice(("110101", "310104", "440305", "510104", "330106", "420106"))
            + _birth(rnd).strftime("%Y%m%d") + f"{rnd.randrange(1000):03d}")
    total = sum(int(c) * w for c, w in zip(head, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5,
                                                  8, 4, 2), strict=True))
    return head + "10X98765432"[total % 11]


def _sg_nric(rnd: random.Random) -> str:
    prefix = rnd.choice("STFG")
    body = _digits(rnd, 7)
    total = (sum(d * w for d, w in zip(body, (2, 7, 6, 5, 4, 3, 2), strict=True))
             + 4 * (prefix in "TG"))
    letters = "JZIHGFEDCBA" if prefix in "ST" else "XWUTRQPNMLK"
    return prefix + _join(body) + letters[total % 11]


def _za_id(rnd: random.Random) -> str:
    head = ([int(c) for c in _birth(rnd).strftime("%y%m%d")] + _digits(rnd, 4)
            + [rnd.randint(0, 1), 8])
    return _join([*head, _luhn_digit(head)])


def _tr_kimlik(rnd: random.Random) -> str:
    ds = [rnd.randint(1, 9), *_digits(rnd, 8)]
    ds.append((sum(ds[0:9:2]) * 7 - sum(ds[1:8:2])) % 10)
    ds.append(sum(ds) % 10)
    return _join(ds)


def _il_teudat_zehut(rnd: random.Random) -> str:
    head = _digits(rnd, 8)
    return _join([*head, _luhn_digit(head)])


@dataclass(frozen=True)
class Country:
    """A country's identifier: how a sentence names it, the keys it is kept under, how to
    make a valid one, and whether its format validates itself (then it also goes bare)."""

    code: str
    lang: str
    faker: str
    cues: tuple[str, ...]
    keys: tuple[str, ...]
    make: Make
    bare: bool


COUNTRIES: tuple[Country, ...] = (
    Country("US", "en", "en_US", ("SSN", "social security number"), ("ssn", "social_security"),
            _us_ssn, False),
    Country("UK", "en", "en_GB", ("National Insurance number", "NI number"),
            ("ni_number", "nino"), lambda r: _nino(r), True),
    Country("CA", "en", "en_CA", ("SIN", "social insurance number"), ("sin", "social_insurance"),
            _ca_sin, False),
    Country("DE", "de", "de_DE", ("Steuer-ID", "steuerliche Identifikationsnummer"),
            ("steuer_id", "IdNr"), lambda r: _steuer_id(r), False),
    Country("FR", "fr", "fr_FR", ("numéro de sécurité sociale", "NIR"),
            ("numero_secu", "nir"), _fr_nir, True),
    Country("ES", "es", "es_ES", ("DNI", "NIE"), ("dni", "nif"),
            lambda r: _nif(r, "" if r.random() < 0.7 else r.choice("XYZ")), True),
    Country("IT", "it", "it_IT", ("codice fiscale",), ("codice_fiscale", "cf"),
            _it_fiscal_code, True),
    Country("NL", "nl", "nl_NL", ("BSN", "burgerservicenummer"), ("bsn",), _nl_bsn, False),
    Country("PL", "pl", "pl_PL", ("PESEL",), ("pesel",), _pl_pesel, False),
    Country("SE", "sv", "sv_SE", ("personnummer",), ("personnummer", "pnr"),
            _se_personnummer, True),
    Country("IN", "en", "en_IN", ("Aadhaar number", "Aadhaar"), ("aadhaar", "aadhaar_no"),
            lambda r: _aadhaar(r), False),
    Country("AU", "en", "en_AU", ("TFN", "tax file number"), ("tfn", "tax_file_number"),
            _au_tfn, False),
    Country("BR", "pt", "pt_BR", ("CPF",), ("cpf",), _br_cpf, True),
    Country("MX", "es", "es_MX", ("CURP",), ("curp",), _mx_curp, True),
    Country("JP", "ja", "ja_JP", ("マイナンバー", "個人番号"), ("個人番号", "my_number"),
            _jp_my_number, False),
    Country("KR", "ko", "ko_KR", ("주민등록번호",), ("주민등록번호", "rrn"), _kr_rrn, True),
    Country("CN", "zh", "zh_CN", ("身份证号码", "身份证号"), ("身份证号", "id_card_no"),
            _cn_resident_id, True),
    Country("SG", "en", "en_US", ("NRIC", "NRIC/FIN"), ("nric", "nric_fin"), _sg_nric, True),
    Country("ZA", "en", "en_GB", ("ID number", "SA ID"), ("id_number", "sa_id"), _za_id, False),
    Country("TR", "tr", "tr_TR", ("T.C. Kimlik No", "TC kimlik numarası"),
            ("tc_kimlik_no", "tckn"), _tr_kimlik, False),
    Country("IL", "he", "he_IL", ("תעודת זהות", "ת.ז."), ("teudat_zehut", "מספר_זהות"),
            _il_teudat_zehut, False),
)
BY_COUNTRY = {c.code: c for c in COUNTRIES}

# Sentences per language, with {name}, {cue} (the field's local name) and {value}.
FRAMES: dict[str, tuple[str, ...]] = {
    "en": ("Hi, this is {name}; my {cue} is {value}, can you update my file?",
           "Customer {name} gave {cue} {value} for the identity check.",
           "{cue}: {value}"),
    "de": ("Hallo, hier ist {name}, meine {cue} lautet {value}.",
           "Kunde {name}, {cue} {value}, bitte prüfen."),
    "fr": ("Bonjour, c'est {name} ; mon {cue} est le {value}.",
           "Client {name}, {cue} : {value}."),
    "es": ("Hola, soy {name}; mi {cue} es {value}.", "Cliente {name}, {cue}: {value}."),
    "it": ("Buongiorno, sono {name}; il mio {cue} è {value}.",
           "Cliente {name}, {cue}: {value}."),
    "nl": ("Hallo, met {name}; mijn {cue} is {value}.", "Klant {name}, {cue}: {value}."),
    "pl": ("Dzień dobry, tu {name}; mój {cue} to {value}.", "Klient {name}, {cue}: {value}."),
    "sv": ("Hej, det är {name}; mitt {cue} är {value}.", "Kund {name}, {cue}: {value}."),
    "pt": ("Olá, aqui é {name}; meu {cue} é {value}.", "Cliente {name}, {cue}: {value}."),
    "ja": ("{name}様の{cue}は{value}です。", "{cue}：{value}"),
    "ko": ("{name}님의 {cue}는 {value}입니다.", "{cue}: {value}"),
    "zh": ("{name}的{cue}是{value}。", "{cue}：{value}"),
    "tr": ("Merhaba, ben {name}; {cue} {value}.", "Müşteri {name}, {cue}: {value}."),
    "he": ("שלום, כאן {name}; ה{cue} שלי הוא {value}.", "{cue}: {value}"),
    "ru": ("Здравствуйте, это {name}; мой {cue}: {value}.", "Клиент {name}, {cue}: {value}."),
}
_BARE = ("{name} — {value}", "verified: {value}", "{value} ({name})", "{value}")


def _framed(frame: str, pieces: dict[str, str], value: str, kind: str) -> _Builder:
    before, _, after = frame.format(value="\x00", **pieces).partition("\x00")
    return _Builder().text(before).value(value, kind).text(after)


@cache
def _faker(code: str) -> Faker:
    """One instance per locale (making one costs ~0.1 s), reseeded before each use."""
    return Faker(code)


def _fakers(seed: int, codes: Sequence[str]) -> dict[str, Faker]:
    out = {}
    for i, code in enumerate(sorted(set(codes))):
        out[code] = _faker(code)
        out[code].seed_instance(seed * 1000 + i)
    return out


def _id_sample(rnd: random.Random, country: Country, fake: Faker, carrier: str) -> Sample:
    name, value, kind = str(fake.name()), country.make(rnd), "national_id"
    cue, key = rnd.choice(country.cues), rnd.choice(country.keys)
    if carrier == "sentence":
        b = _framed(rnd.choice(FRAMES[country.lang]), {"name": name, "cue": cue}, value, kind)
    elif carrier == "bare":
        b = _framed(rnd.choice(_BARE), {"name": name}, value, kind)
    elif carrier == "json":
        b = _Builder().text(f'{{"name": "{name}", "country": "{country.code}", "{key}": "')
        b.value(value, kind).text(f'", "verified": {rnd.choice(("true", "false"))}}}')
    elif carrier == "csv":
        b = _Builder().text(f"name,{key},status\n")
        for _ in range(rnd.randint(2, 4)):
            b.text(f"{fake.name()},").value(country.make(rnd), kind).text(",ok\n")
    else:  # kv: a form body or a log line
        b = _Builder().text(f"{_log_time(rnd)} INFO kyc.submitted country={country.code} "
                            f"{key}=").value(value, kind).text(f" step={rnd.randint(1, 4)}\n")
    return b.sample(carrier, country.code)


# --- phones ------------------------------------------------------------------------------

# Mobile numbers by country: calling code, trunk prefix, ranges in use, then the rest
# (`#` a digit, `[2-9]` one of those); each checked valid against libphonenumber's metadata
# when written. Written in the national format (trunk prefix) or international (+CC).
PHONE_PLANS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "US": ("1", "", ("212", "415", "312", "617", "206", "303", "512"), "-[2-9]##-####"),
    "CA": ("1", "", ("416", "604", "514", "403", "613", "902"), "-[2-9]##-####"),
    "GB": ("44", "0", ("74", "75", "78"), "## ######"),
    "DE": ("49", "0", ("151", "152", "157", "176"), " ########"),
    "FR": ("33", "0", ("6 1", "6 2", "6 5", "6 7", "6 8", "7 5", "7 8"), "# ## ## ##"),
    "ES": ("34", "", ("6",), "## ### ###"),
    "IT": ("39", "", ("347", "333", "328", "366"), " ### ####"),
    "NL": ("31", "0", ("6",), "-[1-5]#######"),
    "PL": ("48", "", ("50", "60", "69", "79", "88"), "# ### ###"),
    "SE": ("46", "0", ("70", "73", "76"), "-### ## ##"),
    "BR": ("55", "", ("11", "21", "31", "41"), " 9####-####"),
    "MX": ("52", "", ("55", "33", "81"), " #### ####"),
    "JP": ("81", "0", ("90", "80", "70"), "-[1-9]###-####"),
    "KR": ("82", "0", ("10",), "-[2-4]###-####"),
    "CN": ("86", "", ("138", "139", "186", "150", "189"), " #### ####"),
    "RU": ("7", "8 ", ("9",), "## ###-##-##"),
    "TR": ("90", "0", ("532", "533", "535", "542", "544", "505"), " ### ## ##"),
    "IL": ("972", "0", ("50", "52", "53", "54"), "-[2-9]##-####"),
    "IN": ("91", "", ("98", "97", "96", "88", "70"), "### #####"),
    "AU": ("61", "0", ("40", "41", "42", "43"), "# ### ###"),
    "SG": ("65", "", ("8", "9"), "[1-7]## ####"),
    "ZA": ("27", "0", ("82", "83", "72", "76", "61"), " ### ####"),
}


def phone(rnd: random.Random, country: str, international: bool) -> str:
    cc, trunk, ranges, rest = PHONE_PLANS[country]
    tail = re.sub(r"\[(\d)-(\d)\]", lambda m: str(rnd.randint(int(m[1]), int(m[2]))), rest)
    tail = "".join(str(rnd.randrange(10)) if c == "#" else c for c in tail)
    number = rnd.choice(ranges) + tail
    if international:
        return f"+{cc} {number}"
    if cc == "1" and rnd.random() < 0.5:
        return f"({number[:3]}) {number[4:]}"
    return trunk + number


# --- personal ----------------------------------------------------------------------------

_IBAN_BBAN = {"DE": "18n", "GB": "4a14n", "FR": "23n", "ES": "20n", "IT": "1a22n",
              "NL": "4a10n", "PL": "24n", "SE": "20n", "BR": "23n2a", "TR": "22n",
              "IL": "19n", "BE": "12n", "AT": "16n"}


def iban(rnd: random.Random, country: str) -> str:
    """An IBAN of `country`: its BBAN's length and letters/digits, ISO 13616's check digits."""
    bban = "".join(_chars(rnd, _UPPER if kind == "a" else string.digits, int(n))
                   for n, kind in re.findall(r"(\d+)([an])", _IBAN_BBAN[country]))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    value = f"{country}{check:02d}{bban}"
    return _fours(value) if rnd.random() < 0.3 else value


_PHONE_WORDS = {"en": "phone number", "de": "Telefonnummer", "fr": "numéro de téléphone",
                "es": "teléfono", "it": "numero di telefono", "nl": "telefoonnummer",
                "pl": "numer telefonu", "sv": "telefonnummer", "pt": "telefone",
                "ja": "電話番号", "ko": "전화번호", "zh": "电话号码", "tr": "telefon numarası",
                "he": "מספר הטלפון", "ru": "номер телефона"}


def _personal_value(rnd: random.Random, kind: str, fake: Faker, country: Country
                    ) -> tuple[str, str, str]:
    """A value of `kind`, the word a sentence calls it and a key, for `country`'s people."""
    if kind == "phone":
        plan = country.code if country.code != "UK" else "GB"
        return (phone(rnd, plan, rnd.random() < 0.35), _PHONE_WORDS[country.lang],
                rnd.choice(("phone", "mobile", "tel", "msisdn")))
    if kind == "iban":
        code = country.code if country.code in _IBAN_BBAN else rnd.choice(("DE", "FR", "NL"))
        return iban(rnd, code), "IBAN", rnd.choice(("iban", "bank_account"))
    if kind == "us_ssn":
        return _us_ssn(rnd), "SSN", rnd.choice(("ssn", "social_security_number"))
    if kind == "ip_address":
        value = str(fake.ipv4_public() if rnd.random() < 0.7 else fake.ipv6())
        return value, "IP address", rnd.choice(("client_ip", "remote_addr", "ip"))
    return str(fake.email()), "e-mail", rnd.choice(("email", "contact_email", "mail"))


PERSONAL_KINDS = ("phone", "iban", "us_ssn", "ip_address", "email")


def _personal_sample(rnd: random.Random, kind: str, fakers: dict[str, Faker], n: int) -> Sample:
    country = COUNTRIES[n % len(COUNTRIES)] if kind != "us_ssn" else BY_COUNTRY["US"]
    fake = fakers[country.faker]
    value, word, key = _personal_value(rnd, kind, fake, country)
    carrier = ("sentence", "json", "csv", "kv", "shape")[n % 5]
    region = country.code if country.code != "UK" else "GB"
    if carrier == "sentence":
        b = _framed(rnd.choice(FRAMES[country.lang]), {"name": str(fake.name()), "cue": word},
                    value, kind)
    elif carrier == "json":
        b = _Builder().text(f'{{"name": "{fake.name()}", "country": "{region}", "{key}": "')
        b.value(value, kind).text('"}')
    elif carrier == "csv":
        b = _Builder().text(f"locale,name,{key}\n")
        for row in range(rnd.randint(2, 4)):
            v = _personal_value(rnd, kind, fake, country)[0] if row else value
            b.text(f"{country.faker},{fake.name()},").value(v, kind).text("\n")
    elif carrier == "kv":
        b = _Builder().text(f"{_log_time(rnd)} INFO signup.created country={region} {key}=")
        b.value(value, kind).text(f" plan={rnd.choice(('free', 'pro'))}\n")
    else:  # the shape each kind travels in without a key
        b = _Builder()
        if kind == "ip_address":
            b.value(value, kind).text(f' - - [01/Mar/2025:10:15:{rnd.randint(10, 59)} +0000] '
                                      f'"GET /api/health HTTP/1.1" 200 {rnd.randint(2, 900)}\n')
        elif kind == "email":
            b.text(f"From: {fake.name()} <").value(value, kind).text(">\nSubject: Re: invoice\n")
        else:
            b.text(f"{fake.name()} ({region}) — ").value(value, kind).text("\n")
    return b.sample(carrier, kind)


# --- people: locales, local keys, birth cues ---------------------------------------------

_FIELDS = ("full_name", "first_name", "last_name", "street", "city", "postcode", "address",
           "dob", "phone", "email", "iban")


@dataclass(frozen=True)
class Locale:
    """A locale's people: keys in its language for each of `_FIELDS`, its address order,
    date formats, birth-cue sentences ({value}) and the country of its ids and phones."""

    code: str
    country: str  # a COUNTRIES code, None-like "" where the set has no id of it
    keys: dict[str, str]
    address: str  # with {street}, {city}, {postcode}
    dates: tuple[str, ...]
    births: tuple[str, ...]


def _locale(code: str, country: str, keys: str, address: str, dates: str, *births: str
            ) -> Locale:
    return Locale(code, country, dict(zip(_FIELDS, keys.split("|"), strict=True)), address,
                  tuple(dates.split("|")), births)


_EU = "{street}, {postcode} {city}"
LOCALES: tuple[Locale, ...] = (
    _locale("en_US", "US", "full_name|first_name|last_name|street|city|zip|address|dob|phone|"
            "email|-", "{street}, {city} {postcode}", "%m/%d/%Y|%B %d, %Y|%Y-%m-%d",
            "Patient was born on {value} and seen today.", "DOB: {value}"),
    _locale("en_GB", "UK", "full_name|forename|surname|street|town|postcode|address|"
            "date_of_birth|phone|email|iban", "{street}, {city} {postcode}", "%d/%m/%Y|%d %B %Y",
            "Customer born {value}, account opened last year.", "D.O.B. {value}"),
    _locale("de_DE", "DE", "name|vorname|nachname|straße|ort|PLZ|anschrift|Geburtsdatum|"
            "telefon|email|IBAN", _EU, "%d.%m.%Y", "Versicherte Person, geb. {value}, Tarif B.",
            "Geburtsdatum: {value}"),
    _locale("fr_FR", "FR", "nom_complet|prénom|nom|rue|ville|code_postal|adresse|"
            "date_de_naissance|téléphone|courriel|IBAN", _EU, "%d/%m/%Y",
            "Le client, né le {value}, a signé le contrat.", "Date de naissance : {value}"),
    _locale("es_ES", "ES", "nombre_completo|nombre|apellidos|calle|ciudad|código_postal|"
            "dirección|fecha_de_nacimiento|teléfono|correo|IBAN", _EU, "%d/%m/%Y",
            "El titular, nacido el {value}, solicita el cambio.", "Fecha de nacimiento: {value}"),
    _locale("it_IT", "IT", "nome_completo|nome|cognome|via|città|cap|indirizzo|"
            "data_di_nascita|telefono|email|IBAN", _EU, "%d/%m/%Y",
            "Il paziente, nato il {value}, è in lista.", "Data di nascita: {value}"),
    _locale("nl_NL", "NL", "naam|voornaam|achternaam|straat|woonplaats|postcode|adres|"
            "geboortedatum|telefoon|email|IBAN", _EU, "%d-%m-%Y",
            "De klant, geboren op {value}, belde vanmorgen.", "Geboortedatum: {value}"),
    _locale("pl_PL", "PL", "imię_i_nazwisko|imię|nazwisko|ulica|miasto|kod_pocztowy|adres|"
            "data_urodzenia|telefon|email|IBAN", _EU, "%d.%m.%Y",
            "Klient, ur. {value}, złożył wniosek.", "Data urodzenia: {value}"),
    _locale("sv_SE", "SE", "namn|förnamn|efternamn|gatuadress|ort|postnummer|adress|"
            "födelsedatum|telefon|epost|IBAN", _EU, "%Y-%m-%d",
            "Kunden, född {value}, ringde i går.", "Födelsedatum: {value}"),
    _locale("pt_BR", "BR", "nome_completo|nome|sobrenome|logradouro|cidade|cep|endereço|"
            "data_de_nascimento|telefone|email|IBAN", "{street}, {city}, CEP {postcode}",
            "%d/%m/%Y", "O cliente, nascido em {value}, pediu o cancelamento.",
            "Data de nascimento: {value}"),
    _locale("es_MX", "MX", "nombre_completo|nombre|apellidos|calle|ciudad|código_postal|"
            "domicilio|fecha_de_nacimiento|teléfono|correo|-", "{street}, C.P. {postcode}, {city}",
            "%d/%m/%Y", "La titular, nacida el {value}, pidió una aclaración.",
            "Fecha de nacimiento: {value}"),
    _locale("ja_JP", "JP", "氏名|名|姓|番地|市区町村|郵便番号|住所|生年月日|電話番号|"
            "メールアドレス|-", "〒{postcode} {city}{street}", "%Y年%m月%d日|%Y/%m/%d",
            "お客様（{value}生まれ）から問い合わせがありました。", "生年月日：{value}"),
    _locale("ko_KR", "KR", "성명|이름|성|도로명주소|시|우편번호|주소|생년월일|전화번호|이메일|-",
            "{street}, {city} {postcode}", "%Y년 %m월 %d일|%Y.%m.%d",
            "고객은 {value}에 태어났습니다.", "생년월일: {value}"),
    _locale("zh_CN", "CN", "姓名|名|姓|街道|城市|邮政编码|地址|出生日期|电话|电子邮件|-",
            "{city}{street}，{postcode}", "%Y年%m月%d日|%Y-%m-%d",
            "客户出生于{value}，已完成实名认证。", "出生日期：{value}"),
    _locale("ru_RU", "", "ФИО|имя|фамилия|улица|город|индекс|адрес|дата_рождения|телефон|"
            "email|-", "{postcode}, {city}, {street}", "%d.%m.%Y",
            "Клиент, {value} г. р., подал заявление.", "Дата рождения: {value}"),
    _locale("tr_TR", "TR", "ad_soyad|ad|soyad|sokak|şehir|posta_kodu|adres|doğum_tarihi|"
            "telefon|eposta|IBAN", "{street}, {postcode} {city}", "%d.%m.%Y",
            "Müşteri {value} doğumlu, başvurusu alındı.", "Doğum tarihi: {value}"),
    _locale("he_IL", "IL", "שם_מלא|שם_פרטי|שם_משפחה|רחוב|עיר|מיקוד|כתובת|תאריך_לידה|טלפון|"
            "דואל|IBAN", "{street}, {city} {postcode}", "%d/%m/%Y",
            "הלקוח, יליד {value}, פנה למוקד.", "תאריך לידה: {value}"),
    _locale("en_IN", "IN", "name|first_name|last_name|street|city|pincode|address|dob|"
            "mobile|email|-", "{street}, {city} - {postcode}", "%d-%m-%Y|%d/%m/%Y",
            "Applicant born on {value}, KYC pending.", "DOB: {value}"),
    _locale("en_AU", "AU", "full_name|given_name|family_name|street|suburb|postcode|address|"
            "date_of_birth|mobile|email|-", "{street}, {city} {postcode}", "%d/%m/%Y",
            "Member born {value}, policy renewed.", "Date of birth: {value}"),
    _locale("en_CA", "CA", "name|first_name|last_name|street|city|postal_code|address|"
            "birthDate|phone|email|-", "{street}, {city} {postcode}", "%Y-%m-%d|%B %d, %Y",
            "Client born on {value}, file reopened.", "DOB {value}"),
)
LOCALE_COUNTRY = {loc.code: loc.country for loc in LOCALES}  # "": no id of it in the set
# English keys a record in any locale may use instead of its own.
_ENGLISH = {"full_name": ("name", "full_name", "customer_name"), "dob": ("dob", "birthDate",
            "date_of_birth"), "address": ("address", "postal_address"), "postcode": ("zip",
            "postcode"), "street": ("street",), "city": ("city",), "first_name": ("first_name",),
            "last_name": ("last_name",)}


@dataclass
class _Person:
    """One person of a locale, each field as its Faker locale writes it."""

    full_name: str
    first_name: str
    last_name: str
    street: str
    city: str
    postcode: str
    address: str
    dob: str
    phone: str
    email: str
    iban: str


_KIND = {"full_name": "person_name", "first_name": "person_name", "last_name": "person_name",
         "street": "street", "city": "city", "postcode": "postcode", "address": "address",
         "dob": "date_of_birth", "phone": "phone", "email": "email", "iban": "iban",
         "national_id": "national_id"}


def _person(loc: Locale, fake: Faker, rnd: random.Random) -> _Person:
    street = str(fake.street_address()).replace("\n", ", ").strip()
    city, postcode = str(fake.city()).strip(), str(fake.postcode()).strip()
    plan = {"UK": "GB", "": "RU"}.get(loc.country, loc.country)
    country = "GB" if loc.country == "UK" else loc.country
    return _Person(
        str(fake.name()).strip(), str(fake.first_name()), str(fake.last_name()), street, city,
        postcode,
        loc.address.format(street=street, city=city, postcode=postcode),
        _birth(rnd).strftime(rnd.choice(loc.dates)), phone(rnd, plan, rnd.random() < 0.3),
        str(fake.email()), iban(rnd, country) if country in _IBAN_BBAN else "")


def _key(loc: Locale, field: str, rnd: random.Random) -> str:
    if field in _ENGLISH and rnd.random() < 0.3:
        return rnd.choice(_ENGLISH[field])
    return loc.keys[field]


def _structured_sample(rnd: random.Random, loc: Locale, fake: Faker, carrier: str) -> Sample:
    p = _person(loc, fake, rnd)
    parts = rnd.choice((("full_name", "dob", "address"), ("first_name", "last_name", "dob"),
                        ("full_name", "street", "postcode", "city"),
                        ("full_name", "dob", "street", "postcode", "city")))
    fields = [(_key(loc, f, rnd), getattr(p, f), _KIND[f]) for f in parts]
    b = _Builder()
    if carrier == "json":
        b.text(f'{{"id": {rnd.randrange(10**6)}')
        for key, value, kind in fields:
            b.text(f', "{key}": "').value(value, kind).text('"')
        b.text(', "status": "active"}')
    elif carrier == "yaml":
        b.text(f"- id: {rnd.randrange(10**6)}\n")
        for key, value, kind in fields:
            b.text(f"  {key}: ").value(value, kind).text("\n")
    elif carrier == "csv":
        b.text("id," + ",".join(k for k, _, _ in fields) + "\n")
        b.text(f"{rnd.randrange(10**6)}")
        for _, value, kind in fields:
            quote_mark = '"' * ("," in value)
            b.text("," + quote_mark).value(value, kind).text(quote_mark)
        b.text("\n")
    elif carrier == "kv":
        b.text(f"{_log_time(rnd)} INFO profile.updated user_id={rnd.randrange(10**6)}")
        for key, value, kind in fields:
            quoted = any(c in value for c in " ,")
            b.text(f" {key}=" + '"' * quoted).value(value, kind).text('"' * quoted)
        b.text("\n")
    else:  # birth_cue: a date after a birth cue of the locale's language, nothing else
        b = _framed(rnd.choice(loc.births), {}, p.dob, "date_of_birth")
    return b.sample(carrier, loc.code)


_TEXT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "ticket": ("Ticket #{n}: {A} says the parcel sent to {ADDR} never arrived. {a} asked us "
               "to call back after 5pm.", "Escalation: {A} cannot log in since Monday; "
               "{B} from billing confirmed the account is active."),
    "meeting_notes": ("Attendees: {A}, {B}, {C}\nNotes: {B} will follow up with {A} about the "
                      "lease at {ADDR}.\n", "Action items\n- {A}: send the draft to {B}\n- {C}:"
                      " book the venue\n"),
    "email": ("Hi {a},\n\nThanks for your patience. Your replacement card will be sent to "
              "{ADDR} within five days.\n\nBest,\n{B}\n",),
    "chat": ("[10:42] agent: Could you confirm your address?\n[10:43] customer: sure, it's "
             "{ADDR}\n[10:44] agent: thanks {a}!\n",),
    "handover": ("{A} moved to {ADDR} last month; please send the contract there and copy "
                 "{B}.",),
}


def _text_sample(rnd: random.Random, kind: str, fake: Faker) -> Sample:
    frame = rnd.choice(_TEXT_TEMPLATES[kind])
    names = {k: str(fake.name()) for k in "ABC"}
    first = str(fake.first_name())
    address = str(fake.address()).replace("\n", ", ")
    values = {"A": (names["A"], "person_name"), "B": (names["B"], "person_name"),
              "C": (names["C"], "person_name"), "a": (first, "person_name"),
              "ADDR": (address, "address"), "n": (str(rnd.randrange(10**5)), None)}
    b = _Builder()
    for literal, field, _, _ in string.Formatter().parse(frame):
        b.text(literal)
        if field:
            value, label = values[field]
            _put(b, [(value, label)])
    return b.sample("prose", kind)


# Sentences of ten languages that name people, as a support ticket, a note or a chat
# says it: {A} and {B} full names, {a} a first name.
_WORLD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "de_DE": ("Laut {A} ist das Paket nie angekommen; {B} ruft morgen zurück.",
              "Hallo {a}, danke für die Geduld. Gruß, {B}"),
    "fr_FR": ("Selon {A}, le colis n'est jamais arrivé ; {B} rappellera demain.",
              "Bonjour {a}, merci de votre patience. Cordialement, {B}"),
    "es_ES": ("Según {A}, el paquete nunca llegó; {B} le llamará mañana.",
              "Hola {a}, gracias por su paciencia. Saludos, {B}"),
    "it_IT": ("Secondo {A} il pacco non è mai arrivato; {B} richiamerà domani.",
              "Ciao {a}, grazie per la pazienza. Saluti, {B}"),
    "nl_NL": ("Volgens {A} is het pakket nooit aangekomen; {B} belt morgen terug.",
              "Hoi {a}, bedankt voor je geduld. Groet, {B}"),
    "pl_PL": ("Według {A} paczka nigdy nie dotarła; {B} oddzwoni jutro.",
              "Dzień dobry {a}, dziękujemy za cierpliwość. Pozdrawiam, {B}"),
    "pt_BR": ("Segundo {A}, o pacote nunca chegou; {B} ligará amanhã.",
              "Olá {a}, obrigado pela paciência. Abraços, {B}"),
    "sv_SE": ("Enligt {A} kom paketet aldrig fram; {B} ringer tillbaka i morgon.",
              "Hej {a}, tack för ditt tålamod. Hälsningar, {B}"),
    "tr_TR": ("{A} paketin hiç gelmediğini söylüyor; {B} yarın geri arayacak.",
              "Merhaba {a}, sabrınız için teşekkürler. Saygılarımla, {B}"),
    "ru_RU": ("По словам {A}, посылка так и не пришла; {B} перезвонит завтра.",
              "Здравствуйте, {a}! Спасибо за терпение. С уважением, {B}"),
}


def _world_sample(rnd: random.Random, code: str, fake: Faker) -> Sample:
    frame = rnd.choice(_WORLD_TEMPLATES[code])
    values = {"A": str(fake.name()), "B": str(fake.name()), "a": str(fake.first_name())}
    b = _Builder()
    for literal, field, _, _ in string.Formatter().parse(frame):
        b.text(literal)
        if field:
            _put(b, [(values[field], "person_name")])
    return b.sample("prose", code)


def _csv_locale_sample(rnd: random.Random, loc: Locale, fake: Faker) -> Sample:
    fields = ["full_name", "phone", "email", "address", "dob"]
    country = BY_COUNTRY.get(loc.country)
    if country is not None:
        fields.append("national_id")
    if loc.keys["iban"] != "-":
        fields.append("iban")
    chosen = ["full_name", *rnd.sample(fields[1:], k=min(4, len(fields) - 1))]
    sep = ";" if loc.code[:2] in ("de", "fr", "es", "it", "nl", "pl", "sv", "tr") and (
        rnd.random() < 0.5) else ","
    headers = [country.keys[0] if f == "national_id" and country else _key(loc, f, rnd)
               for f in chosen]
    b = _Builder().text(sep.join(headers) + "\n")
    for _ in range(rnd.randint(3, 5)):
        p = _person(loc, fake, rnd)
        for i, f in enumerate(chosen):
            value = country.make(rnd) if f == "national_id" and country else getattr(p, f)
            quote_mark = '"' * (sep in value)
            b.text(sep * bool(i) + quote_mark).value(value, _KIND[f]).text(quote_mark)
        b.text("\n")
    return b.sample("csv", loc.code)


# --- negatives ---------------------------------------------------------------------------


def _hex(rnd: random.Random, n: int) -> str:
    return _chars(rnd, _HEX, n)


def _iso(rnd: random.Random) -> str:
    return _log_time(rnd)


_PRODUCTS = ("USB-C cable", "Desk lamp", "Notebook A5", "Coffee beans 1kg", "Monitor arm",
             "Wireless mouse", "Standing desk")
_PLACES = ("Rotterdam", "Singapore", "São Paulo", "Zürich", "Osaka", "Nairobi", "Toronto")
_COMPANIES = ("Acme GmbH", "Globex Corporation", "Initech Ltd", "Umbrella S.A.",
              "Stark Industries", "Wayne Enterprises")
_TOOLS = ("get_weather", "search_docs", "create_ticket", "run_sql", "send_slack_message",
          "list_files")
_MODELS = ("gpt-4o-mini", "claude-3-5-sonnet-20241022", "llama-3.1-70b-instruct",
           "mistral-large-2407", "text-embedding-3-small")


def _hash_line(rnd: random.Random) -> str:
    return rnd.choice((f"{_hex(rnd, 64)}  tollgate-1.4.2.tar.gz\n",
                       f'"integrity": "sha512-{base64.b64encode(rnd.randbytes(64)).decode()}"',
                       f"md5sum: {_hex(rnd, 32)}", f"sha1={_hex(rnd, 40)}",
                       f"Digest: sha256:{_hex(rnd, 64)}"))


def _version_text(rnd: random.Random) -> str:
    return rnd.choice((f"numpy=={rnd.randint(1, 2)}.{rnd.randint(0, 30)}.{rnd.randint(0, 9)}",
                       f"node v{rnd.randint(16, 22)}.{rnd.randint(0, 20)}.{rnd.randint(0, 9)}",
                       f"Chrome/{rnd.randint(100, 130)}.0.{rnd.randint(5000, 7000)}."
                       f"{rnd.randint(10, 200)}",
                       f"Kernel 6.{rnd.randint(1, 12)}.{rnd.randint(0, 80)}-{rnd.randint(1, 30)}"
                       "-generic"))


def _timestamp_text(rnd: random.Random) -> str:
    return rnd.choice((f'{{"created_at": "{_iso(rnd)}", "updated_at": "{_iso(rnd)}"}}',
                       f"Last-Modified: Wed, {rnd.randint(10, 28)} Oct 2024 07:28:00 GMT",
                       f"{_iso(rnd)} WARN cache.miss key=user:{rnd.randrange(10**5)}\n",
                       f"Meeting moved to {_iso(rnd)[:10]} at 14:00."))


def _order_text(rnd: random.Random) -> str:
    return rnd.choice((f"Order ORD-{rnd.randrange(10**9):09d} shipped.",
                       f'{{"invoice": "INV-2024-{rnd.randrange(10**6):06d}", "total": '
                       f'"{rnd.randint(5, 900)}.00 EUR"}}',
                       f"Tracking: 1Z{_chars(rnd, _UPPER + string.digits, 6)}"
                       f"{rnd.randrange(10**10):010d}",
                       f"PO {rnd.randint(4500000000, 4599999999)} approved"))


def _places_text(rnd: random.Random) -> str:
    if rnd.random() < 0.5:
        return (f"Shipping from {rnd.choice(_PLACES)} to {rnd.choice(_PLACES)} via "
                f"{rnd.choice(_COMPANIES)}.")
    return json.dumps({"city": rnd.choice(_PLACES), "region": "eu-central-1",
                       "vendor": rnd.choice(_COMPANIES)})


# Kind -> a text of it that holds nothing to mask.
NEGATIVES: dict[str, Make] = {
    "traceparent": lambda r: (f"traceparent: 00-{_hex(r, 32)}-{_hex(r, 16)}-01\n"
                              f"tracestate: rojo={_hex(r, 16)}\n"),
    "b3": lambda r: (f'{{"X-B3-TraceId": "{_hex(r, 32)}", "X-B3-SpanId": "{_hex(r, 16)}", '
                     '"X-B3-Sampled": "1"}'),
    "request_id": lambda r: (f"{_iso(r)} INFO request done X-Request-Id={_uuid(r)} "
                             f"x-amzn-RequestId={_uuid(r)} status=200\n"),
    "hash": _hash_line,
    "git": lambda r: "".join(f"{_hex(r, 7)} {r.choice(('Fix', 'Add', 'Bump', 'Refactor'))} "
                             f"{r.choice(('parser', 'cache', 'deps', 'CI'))}\n"
                             for _ in range(r.randint(2, 5))),
    "etag": lambda r: (f'HTTP/1.1 304 Not Modified\nETag: "{_hex(r, 40)}"\n'
                       f'If-None-Match: W/"{_hex(r, 16)}"\nCache-Control: max-age=3600\n'),
    "uuid": lambda r: json.dumps({"id": str(_uuid(r)), "parent_id": str(_uuid(r)),
                                  "status": "done"}),
    "version": _version_text,
    "timestamp": _timestamp_text,
    "order_number": _order_text,
    "plain_url": lambda r: (f"https://shop.example.com/search?q="
                            f"{r.choice(_PRODUCTS).replace(' ', '+')}&page={r.randint(1, 9)}"
                            "&sort=asc&utm_source=newsletter&utm_medium=email"),
    "plain_headers": lambda r: (f"GET /api/v1/items HTTP/1.1\nHost: {r.choice(_HOSTS)}\n"
                                f"User-Agent: {r.choice(_AGENTS)}\nAccept: application/json\n"
                                "Cache-Control: no-cache\nContent-Type: application/json\n"),
    "products_csv": lambda r: "sku,product,price\n" + "".join(
        f"SKU-{r.randrange(10**5):05d},{p},{r.randint(1, 500)}.{r.randint(0, 99):02d}\n"
        for p in r.sample(_PRODUCTS, k=3)),
    "places": _places_text,
    "tool_name": lambda r: json.dumps({"type": "function", "function": {
        "name": r.choice(_TOOLS), "description": "Look it up.", "parameters": {
            "type": "object", "properties": {"query": {"type": "string"}}}}}),
    "model_name": lambda r: json.dumps({"model": r.choice(_MODELS), "name": r.choice(_MODELS),
                                        "usage": {"prompt_tokens": r.randint(10, 4000),
                                                  "completion_tokens": r.randint(10, 900)}}),
    "file_name": lambda r: json.dumps({"name": r.choice(("report_2024.pdf", "main.py",
                                                         "Dockerfile", "invoice-0042.csv",
                                                         "README.md")),
                                       "size": r.randint(100, 10**7),
                                       "mime": "application/octet-stream"}),
    "k8s": lambda r: (f"payments-api-{_chars(r, _LOWER_DIGITS, 10)}-{_chars(r, _LOWER_DIGITS, 5)}"
                      f"   1/1   Running   {r.randint(0, 3)}   {r.randint(1, 59)}m\n"
                      f"container id: {_hex(r, 12)}\n"),
    "counters": lambda r: (f"listening on 0.0.0.0:{r.randint(1024, 65535)} "
                           f"pid={r.randint(100, 99999)} workers={r.randint(1, 32)} "
                           f"max_body={r.randint(1, 64)}MiB"),
}


# --- the set ----------------------------------------------------------------------------


def _header_class(rnd: random.Random, _f: dict[str, Faker]) -> Iterator[Sample]:
    for i in range(264):
        yield _header_sample(rnd, list(HEADER_SHAPES)[i % len(HEADER_SHAPES)])


def _url_class(rnd: random.Random, _f: dict[str, Faker]) -> Iterator[Sample]:
    carriers = ("prose", "log", "json", "markdown")
    for i in range(264):
        shape = list(URL_SHAPES)[i % len(URL_SHAPES)]
        yield _url_sample(rnd, shape, carriers[i // len(URL_SHAPES) % len(carriers)])


def _secret_class(rnd: random.Random, _f: dict[str, Faker]) -> Iterator[Sample]:
    for n in range(18):
        for kind in SECRET_KINDS:
            yield _secret_sample(rnd, kind, n)


def _national_id_class(rnd: random.Random, fakers: dict[str, Faker]) -> Iterator[Sample]:
    for country in COUNTRIES:
        carriers = ("sentence", "json", "csv", "kv") + ("bare",) * country.bare
        for n in range(16):
            yield _id_sample(rnd, country, fakers[country.faker], carriers[n % len(carriers)])


def _personal_class(rnd: random.Random, fakers: dict[str, Faker]) -> Iterator[Sample]:
    for n in range(110):
        for kind in PERSONAL_KINDS:
            if kind != "phone" and n >= 44:  # phones: the most shapes, two regions per form
                continue
            yield _personal_sample(rnd, kind, fakers, n)


def _people_structured_class(rnd: random.Random, fakers: dict[str, Faker]) -> Iterator[Sample]:
    carriers = ("json", "yaml", "csv", "kv", "birth_cue")
    for loc in LOCALES:
        for n in range(15):
            yield _structured_sample(rnd, loc, fakers[loc.code], carriers[n % len(carriers)])


def _people_text_class(rnd: random.Random, fakers: dict[str, Faker]) -> Iterator[Sample]:
    english = ("en_US", "en_GB", "en_CA", "en_AU", "en_IN")
    for n in range(130):
        yield _text_sample(rnd, list(_TEXT_TEMPLATES)[n % len(_TEXT_TEMPLATES)],
                           fakers[english[n % len(english)]])


def _csv_locale_class(rnd: random.Random, fakers: dict[str, Faker]) -> Iterator[Sample]:
    for loc in LOCALES:
        for _ in range(6):
            yield _csv_locale_sample(rnd, loc, fakers[loc.code])


def _people_world_class(rnd: random.Random, fakers: dict[str, Faker]) -> Iterator[Sample]:
    for code in _WORLD_TEMPLATES:
        for _ in range(12):
            yield _world_sample(rnd, code, fakers[code])


def _negative_class(rnd: random.Random, _f: dict[str, Faker]) -> Iterator[Sample]:
    for _ in range(48):
        for kind, make in NEGATIVES.items():
            yield Sample(make(rnd), (), "text", kind)


_MAKERS: dict[str, Callable[[random.Random, dict[str, Faker]], Iterator[Sample]]] = {
    "header": _header_class, "url": _url_class, "secret": _secret_class,
    "national_id": _national_id_class, "personal": _personal_class,
    "people_structured": _people_structured_class, "people_text": _people_text_class,
    "csv_locale": _csv_locale_class, "negative": _negative_class,
    "people_world": _people_world_class,
}


def travel_set(seed: int = SEED, classes: Sequence[str] = CLASSES) -> dict[str, list[Sample]]:
    """The samples of `classes` (all by default), by class; each class is made from the seed
    alone, so a class is the same whether or not the others are made."""
    codes = [loc.code for loc in LOCALES] + [c.faker for c in COUNTRIES]
    out = {}
    for i, cls in enumerate(CLASSES):
        if cls in classes:
            fakers = _fakers(seed + i, codes)
            out[cls] = list(_MAKERS[cls](random.Random(seed * 100 + i), fakers))
    return out
