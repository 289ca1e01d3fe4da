"""Key-name rules: the one table of names whose values are masked whatever they look like,
and the readers that find a value under one of those names wherever it travels.

A credential travels under a name: a JSON key, an HTTP header (a real one, or one printed
in a log line, a header dump, a curl command line, a Python dict), a URL's query
parameter or fragment, a cookie, an environment variable, a key of a config file. One
table, `FIELDS`, names them for every carrier, compared after `normalise_field`: the
same rule masks `{"X-Amz-Security-Token": …}`, `X-Amz-Security-Token: …` in a header
dump, `?X-Amz-Security-Token=…` in a presigned URL and `x_amz_security_token=…` in a log.
A policy replaces or extends the table per caller (`MaskSpec.fields`), naming it whole
(`@default`) or its credentials only (`@credentials`).

Two kinds of header values are read, not masked whole: an authorization header's scheme
word stays (`Bearer [REDACTED:FIELD]`: the record still says how the caller
authenticated), and a cookie header's attributes and harmless cookies stay
(`theme=dark; Path=/`): a cookie's value is masked if its name is in the table or names
a session (`SESSION_COOKIE_ENDINGS`), or if it is 16 characters or more.

A value is masked whole however long it is, up to `LONGEST_VALUE` (a 2 KB token under
`access_token=` masked in its first 512 bytes leaked the rest); its key decides it, so a
stream holds back a key's reach (`MAX_KEY`, `MAX_VALUE`) and a value still open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from extproc.masking import generic_secrets
from extproc.masking.detectors import LONGEST_VALUE, Detector, Text
from extproc.masking.literals import Literals, Positions

# Compared after `normalise_field`, exactly: `token` masks {"token": ...} and
# {"Token": ...}, not {"tokens": 12} (an LLM usage count) nor {"next_page_token": ...}.
FIELDS: frozenset[str] = frozenset({
    # what a JSON document, a form or a config file calls a secret or a personal number
    "ssn", "password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "apitoken",
    "accesstoken", "refreshtoken", "idtoken", "sessiontoken", "authtoken", "clientsecret",
    "cardnumber", "cvv", "cvc", "privatekey", "secretaccesskey", "awssecretaccesskey",
    "awssessiontoken", "securitytoken", "socialsecuritynumber",
    # HTTP headers that carry a credential (and the same names as query parameters)
    "authorization", "proxyauthorization", "cookie", "setcookie", "xapikey", "xapitoken",
    "xauthtoken", "xaccesstoken", "privatetoken", "xamzsecuritytoken", "xgoogapikey",
    "ocpapimsubscriptionkey", "xfunctionskey", "xvaulttoken", "xconsultoken",
    # a presigned URL's signature and credential (AWS SigV4, Google), an Azure SAS's `sig`
    "xamzsignature", "xamzcredential", "xgoogsignature", "xgoogcredential", "sig",
    # session cookies by their frameworks' names, in a URL or a form as in a cookie
    "sessionid", "phpsessid", "jsessionid", "aspnetsessionid", "connect.sid",
})

# The names above that a personal number (not a credential) travels under: a policy that
# lets a privileged caller read personal data masks `@credentials`, the rest.
_PERSONAL = frozenset({"ssn", "socialsecuritynumber", "cardnumber", "cvv", "cvc"})
# Named sets a policy's `fields` may list (`MaskSpec.from_policy`).
SETS: dict[str, frozenset[str]] = {"@default": FIELDS, "@credentials": FIELDS - _PERSONAL}

# The names above that are HTTP headers: read as one even in the middle of a line
# (`… headers: X-Api-Key: abc123 …`), where another name's bare word is prose
# (`the token: 5 minutes`). A name with a `-` is read so too (`X-Custom-Token: …`).
HEADERS = frozenset({
    "authorization", "proxyauthorization", "cookie", "setcookie", "xapikey", "xapitoken",
    "xauthtoken", "xaccesstoken", "privatetoken", "xamzsecuritytoken", "xgoogapikey",
    "ocpapimsubscriptionkey", "xfunctionskey", "xvaulttoken", "xconsultoken",
})
# Headers whose value is `<scheme> <credential>`: the scheme stays readable.
AUTH_HEADERS = frozenset({"authorization", "proxyauthorization"})
AUTH_SCHEMES = frozenset({b"bearer", b"basic", b"digest", b"token", b"negotiate", b"ntlm",
                          b"apikey", b"ssws", b"bot", b"oauth", b"aws4-hmac-sha256", b"dpop",
                          b"mac", b"hawk"})
# Headers whose value is a list of cookies (`a=1; b=2`, `name=value; Path=/; Secure`).
COOKIE_HEADERS = frozenset({"cookie", "setcookie"})
# A cookie whose name ends in one of these is a session (`laravel_session`, `ci_session`,
# `__Secure-next-auth.session-token`, `connect.sid`): masked whatever its value.
SESSION_COOKIE_ENDINGS = ("session", "sessionid", "sessid", "sessiontoken", "sid", "auth",
                          "authtoken", "token", "jwt", "remembertoken", "rememberme")
# A cookie value this long is an identifier or a credential, whatever its name.
_COOKIE_LONG = 16

MAX_KEY, MAX_VALUE = 64, 512


def normalise_field(name: str) -> str:
    """A key as field rules compare it: case-insensitive, `-` and `_` ignored."""
    return name.lower().replace("-", "").replace("_", "")


def session_cookie(name: str) -> bool:
    """Whether a normalised cookie name names a session (`SESSION_COOKIE_ENDINGS`)."""
    return name.endswith(SESSION_COOKIE_ENDINGS)


def _normalised(key: bytes) -> str:
    return key.lower().translate(None, b"-_").decode("ascii", "replace")


# --- readers ------------------------------------------------------------------------------

# `"key": "value"` where the JSON is text: a server-sent event's `data:` line, JSON carried
# in a string.
# A value still open where the text ends (a stream's, cut) runs to that end, an escape's
# backslash too.
_QUOTED_PAIR = re.compile(
    rb'"([A-Za-z0-9_.\-]{1,%d})"\s{0,8}:\s{0,8}"((?:[^"\\]|\\.){0,%d})(?:"|\\?\Z)'
    % (MAX_KEY, LONGEST_VALUE)
)
# `key=value`: a key of 1-64 of these, not preceded by another, then `=` and a value.
# Found from the `=` (a literal `re` skips to), the key read backwards (`rstrip`): a
# pattern that starts at every key character, with a look-behind, costs ~30x more on prose.
_KEY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
# A value ends at a JSON scalar's end too (the NUL and SOH that part the scalars a masker
# scans joined): read on, it took the next string's text for its own.
_ASSIGNMENT_VALUE = re.compile(rb"=([^&\s\"';,\x00\x01]{1,%d})" % LONGEST_VALUE)


def assignments(raw: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Each `key=value` in `raw`, left to right, not overlapping: key, value start, end."""
    done = 0  # where the last one ends: the next one's key starts here or later
    eq = raw.find(b"=")
    while eq != -1:
        before = raw[max(0, eq - MAX_KEY - 1) : eq]
        key = len(before) - len(before.rstrip(_KEY_CHARS))  # up to 65: one too many
        value = _ASSIGNMENT_VALUE.match(raw, eq)
        if 0 < key <= MAX_KEY and eq - key >= done and value is not None:
            yield raw[eq - key : eq], *value.span(1)
            done = value.end()
            eq = raw.find(b"=", done)
        else:
            eq = raw.find(b"=", eq + 1)


# What ends a bare value that runs to the end of its line: a line break, a JSON scalar's
# end, or a line break written as an escape inside a JSON string (`\r\n`).
_LINE_END = re.compile(rb"[\r\n\x00\x01]|\\[rn]")
_QUOTES = b"\"'`"
_SPACE = b" \t"
# What may stand before a header-shaped key for its value to be read to the line's end:
# a line's start (or a JSON scalar's), an escaped line break, or an opening quote
# (`-H 'Authorization: …'`, `["Cookie: …"]`).
_LINE_LED = frozenset(b"\r\n\x00\x01")


def _value_after(raw: bytes, at: int, opener: int | None, whole_line: bool
                 ) -> tuple[int, int] | None:
    """The value starting at `at` (after a separator and spaces): quoted, or bare to the
    line's end (or to `opener`, the quote the key stood in) if `whole_line`, else bare to
    the next space."""
    if at >= len(raw):
        return None
    first = raw[at]
    if first in _QUOTES and opener is None:
        end = at + 1
        while end < len(raw) and end - at <= LONGEST_VALUE + 1:
            c = raw[end]
            if c == first:
                return (at + 1, end) if end > at + 1 else None
            if c == 0x5C:  # a backslash escapes what follows
                end += 1
            elif c in b"\r\n\x00":
                return None
            end += 1
        return (at + 1, end) if end == len(raw) > at + 1 else None  # open to the end
    stop = len(raw)
    if (m := _LINE_END.search(raw, at, min(len(raw), at + LONGEST_VALUE + 2))) is not None:
        stop = m.start()
    if opener is not None and (q := raw.find(bytes([opener]), at, stop)) != -1:
        stop = q
    if not whole_line:
        space = raw.find(b" ", at, stop)
        stop = space if space != -1 else stop
    end = len(raw[at:stop].rstrip(b" \t,;"))
    return (at, at + end) if 0 < end <= LONGEST_VALUE else None


def _key_before(raw: bytes, colon: int, fields: frozenset[str]
                ) -> tuple[int, int, int | None, bool] | None:
    """The key of `fields` whose colon is at `colon`: its start and end, the quote its
    value is read to (the key stood in an opened quote: `-H 'Name: value'`) and whether it
    leads its line; None if no such key is there, or it is quoted unevenly."""
    key_end = colon
    while key_end > 0 and raw[key_end - 1] in _SPACE and colon - key_end < 4:
        key_end -= 1
    closing = raw[key_end - 1] if key_end and raw[key_end - 1] in _QUOTES else None
    name_end = key_end - (closing is not None)
    before = raw[max(0, name_end - MAX_KEY - 1) : name_end]
    start = name_end - (len(before) - len(before.rstrip(_KEY_CHARS)))
    if name_end - start > 1 and raw[start - 1 : start] == b"\\" and raw[start] in b"nrt":
        start += 1  # `\nName:` in a JSON string: an escape, not the key's first letter
    if not 0 < name_end - start <= MAX_KEY or _normalised(raw[start:name_end]) not in fields:
        return None
    opener = raw[start - 1] if start and raw[start - 1] in _QUOTES else None
    if closing is not None:  # `'Name': value`: the value is quoted or one word
        return (start, name_end, None, False) if opener == closing else None
    if opener is not None:  # `'Name: value'`: the key leads what the quote holds
        return start, name_end, opener, True
    lead = start - 1
    while lead >= 0 and raw[lead] in _SPACE:  # a YAML key's indentation
        lead -= 1
    if lead > 0 and raw[lead] in b"<>" and raw[lead - 1] in _LINE_LED:  # `curl -v`'s `> `
        lead -= 1
    led = lead < 0 or raw[lead] in _LINE_LED or (
        raw[lead] in b"nr" and raw[lead - 1 : lead] == b"\\")
    return start, name_end, None, led


# A colon a value may follow: not a time's (`10:30`), a port's or a URL's (`https://`).
_COLON = re.compile(rb":(?![0-9/])")


def colon_pairs(raw: bytes, fields: frozenset[str]) -> Iterator[tuple[bytes, int, int, bool]]:
    """Each `key: value` in `raw` (they may overlap: `headers: Authorization: …`): key,
    value start, end, and whether the value ran to the end of a line (a header line,
    `-H 'Name: value'`) rather than being quoted or one word.

    A key is read back from its colon, as `assignments` does, optionally quoted
    (`'Authorization': 'Bearer …'`). A bare value runs to the line's end only where the
    key leads its line or a quote (see `_LINE_LED`); elsewhere (`request headers:
    Authorization: Bearer …`, prose) it is one word, and quoted values are read anywhere.
    Only keys of `fields` are read (the check comes first: most colons are prose's).
    """
    for m in _COLON.finditer(raw):
        colon = m.start()
        if (key := _key_before(raw, colon, fields)) is not None:
            start, name_end, opener, line_led = key
            at = colon + 1
            while at < len(raw) and raw[at] in _SPACE and at - colon <= 8:
                at += 1
            span = _value_after(raw, at, opener, line_led)
            if span is not None:
                yield raw[start:name_end], *span, line_led and raw[at] not in _QUOTES


_NEXT_WORD = re.compile(rb"[ \t]{1,8}([^\s\"'`,;]{1,%d})" % LONGEST_VALUE)


def _auth_credential(raw: bytes, s: int, e: int, line: bool) -> tuple[int, int]:
    """An authorization value without its scheme word (`Bearer`, `Basic`...): the rest of
    the value read to its line's end, or the word after the scheme where only one word
    was read (`… Authorization: Bearer abc status=200`)."""
    if not line:
        if raw[s:e].lower() in AUTH_SCHEMES and (m := _NEXT_WORD.match(raw, e)) is not None:
            return m.span(1)
        return s, e
    space = raw.find(b" ", s, e)
    if space != -1 and raw[s:space].lower() in AUTH_SCHEMES:
        rest = space + 1
        while rest < e and raw[rest] == 0x20:
            rest += 1
        return (rest, e) if rest < e else (s, e)
    return s, e


_COOKIE = re.compile(rb"[ \t]*([^=;, \t]{1,%d})=([^;\r\n]{0,%d})" % (MAX_KEY, LONGEST_VALUE))


def cookie_values(raw: bytes, s: int, e: int, fields: frozenset[str]) -> Iterator[tuple[int, int]]:
    """The values to mask in a cookie header's value `raw[s:e]` (see the module's
    docstring): a session's, a value under a key-name rule, any long one."""
    for part in raw[s:e].split(b";"):
        m = _COOKIE.match(part.replace(b"\t", b"=", 1) if b"=" not in part else part)
        if m is not None and m.end(2) > m.start(2):
            name, value = _normalised(m[1]), m[2].rstrip(b" \t")
            if (name in fields or session_cookie(name)
                    or len(value) >= _COOKIE_LONG):
                yield s + m.start(2), s + m.start(2) + len(value)
        s += len(part) + 1


# Cookies given as curl's `-b`/`--cookie` (a cookie header's value), and the lines of a
# Netscape cookie file (curl's and wget's jars): domain, subdomains, path, secure,
# expiry, name, value, tab-separated.
_COOKIE_FLAG = re.compile(rb"""(?:-b|--cookie)(?:[ \t]{1,4}|=)(['"]?)([^'"\r\n]{3,%d})"""
                          % LONGEST_VALUE)
_COOKIE_FILE_LINE = re.compile(
    rb"(?m)^[^\t\r\n]{1,255}\t(?:TRUE|FALSE)\t[^\t\r\n]{0,255}\t(?:TRUE|FALSE)\t[0-9]{1,12}"
    rb"\t([^\t\r\n]{1,%d})\t([^\t\r\n]{1,%d})$" % (MAX_KEY, LONGEST_VALUE))


# `{"name": "PHPSESSID", …, "value": "…"}` where JSON is text: a value an object names (a
# cookie jar's cookie, a HAR header, a Kubernetes env var), the name first (as they are
# written), within one object.
_NAMED_VALUE = re.compile(
    rb'"name"\s{0,8}:\s{0,8}"([A-Za-z0-9_.\-]{1,%d})"[^{}]{0,256}?"value"\s{0,8}:\s{0,8}"'
    rb'((?:[^"\\]|\\.){1,%d})(?:"|\\?\Z)' % (MAX_KEY, LONGEST_VALUE))


def _named_values(t: Text, fields: frozenset[str], at: Positions) -> Iterator[tuple[int, int]]:
    for start in at.get(b'"value"', ()):
        # The name comes first, within the object: read from at most 256 + 90 bytes back.
        lo = max(0, t.raw.rfind(b"{", 0, start) + 1, start - 350)
        for m in _NAMED_VALUE.finditer(t.raw, lo, start + 16 + LONGEST_VALUE):
            if m.start(2) > start and named_rule(_normalised(m[1]), fields):
                yield m.span(2)


def named_rule(name: str, fields: frozenset[str]) -> bool:
    """Whether a value named `name` (normalised) by its object is masked whole: a name of
    the table, a session cookie's or a secret's (generic_secrets.py)."""
    return name in fields or session_cookie(name) or generic_secrets.secret_name(
        name.replace(".", "").encode())


def _cookies_elsewhere(t: Text, fields: frozenset[str], at: Positions
                       ) -> Iterator[tuple[int, int]]:
    raw = t.raw
    for flag in _COOKIE_FLAGS:
        for pos in at.get(flag, ()):
            m = _COOKIE_FLAG.match(raw, pos + (flag[0] != 0x2D))
            if m is not None:
                end = m.end(2) if not m[1] else raw.find(m[1], m.start(2), m.end(2) + 1)
                if b"=" in raw[m.start(2) : end]:
                    yield from cookie_values(raw, m.start(2), end, fields)
    if b"\ttrue\t" in at or b"\tfalse\t" in at:
        for m in _COOKIE_FILE_LINE.finditer(raw):
            yield from cookie_values(raw, m.start(1), m.end(2), fields)


# What the text readers above start from, found by the one Hyperscan pass (literals.py):
# a `find` each would cost ~2 µs a 2 KB text.
_COOKIE_FLAGS = (b" -b", b"\t-b", b"--cookie")
LITERALS = Literals("key_rules", (*_COOKIE_FLAGS, b"\ttrue\t", b"\tfalse\t", b'"value"'))


def named_values(t: Text, fields: frozenset[str]) -> list[tuple[int, int]]:
    """The values under a key-name rule in text: quoted pairs, `key=value` and
    `key: value` (header-shaped), an authorization's credential and a cookie header's
    cookies as the module's docstring says."""
    raw, at = t.raw, LITERALS.positions(t)
    found: list[tuple[int, int]] = []
    # A literal prefilter: most texts hold no quoted pair, and a scan costs more than a find.
    if b'"' in raw:
        found += [m.span(2) for m in _QUOTED_PAIR.finditer(raw)
                  if m.end(2) > m.start(2) and normalise_field(m.group(1).decode()) in fields]
    found += [(s, e) for key, s, e in assignments(raw) if _normalised(key) in fields]
    if at:
        found += _cookies_elsewhere(t, fields, at)
        found += _named_values(t, fields, at)
    for key, s, e, line in colon_pairs(raw, fields):
        name = _normalised(key)
        if not (line or raw[s - 1] in _QUOTES or name in HEADERS or b"-" in key):
            continue
        if name in COOKIE_HEADERS and line:
            found += cookie_values(raw, s, e, fields)
        elif name in AUTH_HEADERS:
            found.append(_auth_credential(raw, s, e, line))
        else:
            found.append((s, e))
    return found


@lru_cache(maxsize=64)
def field_in_text(fields: frozenset[str]) -> Detector:
    """The key-name rules as a detector over text (one detector per set of rules)."""
    # Enough hold-back for the key, its separators and the longest value, plus quotes.
    return Detector("field", "FIELD", lambda t: named_values(t, fields),
                    max_len=MAX_KEY + MAX_VALUE + 24)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


@lru_cache(maxsize=64)
def column_rules(fields: frozenset[str], delimiter: str) -> Detector:
    """The key-name rules over delimited text (CSV, TSV) as a detector: the cells of the
    columns whose header (the first record) names one of `fields`. Cells are read as RFC
    4180 writes them: quoted (`""` inside) or bare up to the next delimiter or line end.
    """
    d = re.escape(delimiter.encode())
    cells = re.compile(rb'(?:"((?:[^"]|"")*)"|([^"%s\r\n]*))(%s|\r?\n|\Z)' % (d, d))

    def find(t: Text) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        ruled: set[int] = set()
        column, pos, header = 0, 0, True
        while pos < len(t.raw) and (m := cells.match(t.raw, pos)) and m.end() > pos:
            cell = 1 if m.start(1) != -1 else 2
            if header and normalise_field(_decode(m[cell]).strip()) in fields:
                ruled.add(column)
            elif not header and column in ruled and m.end(cell) > m.start(cell):
                found.append(m.span(cell))
            column += 1
            if m[3] != delimiter.encode():  # the record ends
                column, header = 0, False
            pos = m.end()
        return found

    return Detector("field", "FIELD", find, max_len=0)
