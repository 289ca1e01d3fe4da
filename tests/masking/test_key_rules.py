"""The one table of key names, read wherever a value travels under a name: header dumps,
curl lines, dicts printed in logs, escaped JSON strings, cookies, URLs and config files;
and the secrets known by the words around them (an authorization scheme, `-u`, .netrc)."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.masking import DEFAULT_FIELDS, Masker, MaskSpec, key_rules
from tests.masking.conftest import KEY

MASKER = Masker(KEY)
SPEC = MaskSpec()
TOKEN = "tok9Xc2LmQ7pZr4VbN8s"  # looks generated: letters of both cases and digits
SESSION = "8f2k3j4h5g6f7d8s9a0q1w2e"


def masked(text: str, spec: MaskSpec = SPEC) -> str:
    return MASKER.mask_text(text, spec)[0]


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {TOKEN}",
    f"GET / HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
    f"curl -H 'Authorization: Bearer {TOKEN}' https://api.example.com/v1",
    f'curl --header "Proxy-Authorization: Bearer {TOKEN}" https://x.example',
    f"headers={{'Authorization': 'Bearer {TOKEN}', 'Accept': 'application/json'}}",
    f'fetch(url, {{headers: {{Authorization: "Bearer {TOKEN}"}}}})',
    f'{{"log": "POST /login HTTP/1.1\\r\\nAuthorization: Bearer {TOKEN}\\r\\n"}}',
    f'["Host: x.example", "Authorization: Bearer {TOKEN}"]',
    f"2026-11-27 INFO request headers: Authorization: Bearer {TOKEN} status=200",
    f"X-Amz-Security-Token: {TOKEN}",
    f"  x-api-key: {TOKEN}\n  accept: */*",
    f"Ocp-Apim-Subscription-Key: {TOKEN}",
    f"PRIVATE-TOKEN: {TOKEN}",
    f"X-Auth-Token: {TOKEN}",
    f"Cookie: theme=dark; sessionid={TOKEN}",
    f"Set-Cookie: connect.sid={TOKEN}; Path=/; HttpOnly; Secure",
    f"https://api.example.com/v1/items?page=2&access_token={TOKEN}",
    f"https://app.example.com/callback#access_token={TOKEN}&token_type=bearer",
    f"https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={TOKEN}",
    f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig={TOKEN}",
    f"export AWS_SESSION_TOKEN={TOKEN}",
    f"aws_session_token={TOKEN}",
    f"//registry.npmjs.org/:_authToken={TOKEN}",
])
def test_a_value_under_a_name_of_the_table_is_masked_wherever_it_travels(text: str) -> None:
    out = masked(text)
    assert TOKEN not in out and "[REDACTED:" in out, out


@pytest.mark.parametrize(("text", "kept"), [
    (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer [REDACTED:"),
    (f"Proxy-Authorization: Basic {TOKEN}", "Proxy-Authorization: Basic [REDACTED:"),
    (f"Cookie: theme=dark; lang=en; sessionid={SESSION}", "theme=dark; lang=en; sessionid=["),
    (f"Set-Cookie: session={SESSION}; Path=/; Max-Age=3600; SameSite=Lax",
     "; Path=/; Max-Age=3600; SameSite=Lax"),
    ("Cookie: _ga=GA1.2.1234567890.1700000000; theme=dark", "; theme=dark"),
])
def test_what_says_how_a_credential_is_used_stays_readable(text: str, kept: str) -> None:
    out = masked(text)
    assert kept in out and TOKEN not in out and SESSION not in out, out
    if "_ga=" in text:  # a long value is an identifier, whatever its name
        assert "1700000000" not in out


@pytest.mark.parametrize("text", [
    "Note: the token: 5 minutes before it expires",
    "Content-Type: application/json\nAccept: */*\nUser-Agent: agent/1.0\nCache-Control: no-cache",
    "X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\n"
    "ETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"",
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "Cookie: theme=dark; lang=en-GB; tz=Europe/Berlin",
    "https://shop.example.com/search?q=shoes&page=2&sort=asc&utm_source=newsletter",
    "the basic idea is simple, and the bearer of bad news was 1234567890abcdefghij",
    "sudo -u postgres psql -c 'select 1'",
    "machine learning models are trained on data",
])
def test_look_alikes_pass(text: str) -> None:
    assert masked(text) == text


# --- secrets known by the words around them -----------------------------------------------

BASIC = base64.b64encode(b"deploy:S3cret-pass!").decode()


@pytest.mark.parametrize(("text", "secret"), [
    (f"then call it with Bearer {TOKEN} as the header", TOKEN),
    (f"auth failed for basic {BASIC} (401)", BASIC),
    ("curl -u admin:Sup3rS3cret https://api.example.com", "Sup3rS3cret"),
    ('curl --user "bob:pass with spaces" https://x.example', "pass with spaces"),
    ("curl --proxy-user proxy:Pr0xyPass -x http://p:3128 https://x", "Pr0xyPass"),
    ("machine api.github.com login bob password ghs_notarealtoken123", "ghs_notarealtoken123"),
    ("machine db.internal\n  login app\n  password s3cr3t-V4lue\n", "s3cr3t-V4lue"),
])
def test_a_secret_after_the_word_that_names_it_is_masked(text: str, secret: str) -> None:
    assert secret not in masked(text)


def test_basic_is_a_credential_only_where_it_decodes_to_a_pair() -> None:
    not_a_pair = base64.b64encode(b"just some words").decode()
    assert masked(f"basic {not_a_pair}") == f"basic {not_a_pair}"


# --- the table and its named sets ---------------------------------------------------------

def test_the_privileged_set_is_the_table_without_personal_numbers() -> None:
    credentials = MaskSpec.from_policy({"fields": ["@credentials"]}).fields
    assert credentials < DEFAULT_FIELDS
    assert {"ssn", "cardnumber"} & credentials == set()
    assert {"authorization", "cookie", "xamzsecuritytoken", "password"} <= credentials
    assert MaskSpec.from_policy({"fields": ["@default", "iban"]}).fields == DEFAULT_FIELDS | {
        "iban"}


def test_an_unknown_named_set_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown field sets: @secrets; one of @credentials"):
        MaskSpec.from_policy({"fields": ["@secrets"]})


def test_a_policy_that_drops_a_name_drops_it_in_every_carrier() -> None:
    spec = MaskSpec(detectors=frozenset(), fields=DEFAULT_FIELDS - {"cookie", "sessionid"})
    text = "Cookie: sessionid=" + SESSION
    assert masked(text, spec) == text


# --- header lines, generated --------------------------------------------------------------

_NAMES = sorted(key_rules.HEADERS - key_rules.COOKIE_HEADERS)
_VALUE = st.text(string.ascii_letters + string.digits + "._~+/-", min_size=8, max_size=80)


@given(name=st.sampled_from(_NAMES), value=_VALUE, lead=st.sampled_from(
    ["", "\n", "\r\n", "\n  ", " -H '", ' -H "', " ['", '\\r\\n']),
    case=st.sampled_from([str.lower, str.upper, str.title, lambda s: s]))
def test_every_header_of_the_table_masks_its_value_however_it_is_printed(
        name: str, value: str, lead: str, case: object) -> None:
    spelled = {"authorization": "Authorization", "proxyauthorization": "Proxy-Authorization"}.get(
        name, "-".join([name[:1], name[1:]]) if name.startswith("x") else name)
    header = case(spelled)  # type: ignore[operator]
    close = lead[-1] if lead[-1:] in ("'", '"') else ""
    scheme = "Bearer " if name in key_rules.AUTH_HEADERS else ""
    text = (f"GET / HTTP/1.1{lead}" if lead else "") + f"{header}: {scheme}{value}{close}\n"
    out = masked(text)
    assert value not in out, out
