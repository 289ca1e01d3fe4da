"""Secrets known only by their name (extproc/masking/generic_secrets.py): a value after a
key-like name that looks generated, in text and in JSON, and what must stay readable."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec, generic_secrets
from extproc.masking.generic_secrets import looks_generated
from tests.masking.conftest import found

TOKEN = "q7Vd2Lx9Rk4Tz8Wm3Np6"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password: hunter2-Xy9", ["hunter2-Xy9"]),
        ("DB_PASSWORD=Tr0ub4dor&3 next", ["Tr0ub4dor&3"]),
        (f"API_KEY={TOKEN}", [TOKEN]),
        (f"export GITHUB_TOKEN=\"{TOKEN}\"", [TOKEN]),
        (f"'token' => '{TOKEN}',", [TOKEN]),
        (f'{{"client_secret": "{TOKEN}"}}', [TOKEN]),
        ("psql --password s3cret-Pass --host db", ["s3cret-Pass"]),
        (f"tool --api-key={TOKEN}", [TOKEN]),
        (f"X-Auth-Token: {TOKEN}", [TOKEN]),
        (f"https://api.example.com/v1?access_token={TOKEN}&page=2", [TOKEN]),
        ("spring.datasource.password := P@ssw0rd!", ["P@ssw0rd!"]),
        (f"credentials: {TOKEN}.", [TOKEN]),
        (f"private_key: {TOKEN}", [TOKEN]),
        ("if password == 'Secr3t!pass':", ["Secr3t!pass"]),
    ],
)
def test_values_of_key_like_names(text: str, expected: list[str]) -> None:
    assert found("generic_secret", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "password: changeme", "password: <your-password>", "token: ${GITHUB_TOKEN}",
        "api_key: {{ .Values.apiKey }}", "secret: %SECRET%", "token: xxxxxxxxxxxxxxxxxxxx",
        "password = settings.DB_PASSWORD", "password = self.password",
        "token = get_token()", "secret = secrets.token_bytes(4)",
        "password={PASSWORD}).encode()", "token = os.environ['TOKEN']", "auth: true",
        "private: false", "token: null",
        "Token: 5 minutes", "password: the one you chose", "max_tokens: 4096",
        "tokens=1024", "secret_path: /etc/secrets/db", "token_url: https://auth.example.com",
        "auth: https://login.example.com/oauth2/v2.0/token",
        "credentials_file: ~/.aws/credentials", "author: Jane Doe", "authority: x",
        f"next_page_token: {TOKEN}", f"pageToken={TOKEN}", "token_type: Bearer",
        "secret: my-app-secret-name", "api_key: 1234567890123456",
        f"the token {TOKEN} is", f"key={TOKEN}", "password: hunter2",
        "password: [REDACTED:PASSWORD]", "secret: 2024-10-23T17:48:46Z",
    ],
)
def test_what_is_not_a_generated_secret(text: str) -> None:
    assert found("generic_secret", text) == []


# A generated token: twelve or more distinct letters and four or more distinct digits,
# shuffled (repeated digits, `abcdefghijkl0000000000`, fall below the entropy floor);
# never one that spells a placeholder's word (`ZabeYOURfghijcd0123`: `your`, as in
# YOUR_API_KEY), which the detector leaves alone by design.
_TOKENS = st.tuples(
    st.lists(st.sampled_from(string.ascii_letters), min_size=12, max_size=40, unique=True),
    st.lists(st.sampled_from(string.digits), min_size=4, max_size=10, unique=True),
).flatmap(lambda parts: st.permutations(parts[0] + parts[1])).map("".join).filter(
    lambda token: not generic_secrets._PLACEHOLDER.search(token.lower().encode()))


@given(_TOKENS, st.sampled_from(["SERVICE_API_KEY={}", "token: {}", '"auth": "{}"',
                                 "--client-secret {}", "credentials = '{}'"]))
def test_a_generated_token_under_a_key_like_name_is_masked(value: str, form: str) -> None:
    assert found("generic_secret", form.format(value) + "\n") == [value]
    assert looks_generated(value.encode(), password=False)


@given(st.lists(st.sampled_from(["the", "token", "is", "expired", "secret", "a", "password",
                                 "reset", "auth", "flow", ":", "=", "key", "api"]),
                max_size=30))
def test_prose_about_secrets_is_not_one(words: list[str]) -> None:
    assert found("generic_secret", " ".join(words)) == []


def test_json_values_under_names_not_in_the_field_rules() -> None:
    """DEFAULT_FIELDS masks {"password": ...} whole; names outside it (db_password,
    GITHUB_TOKEN, auth, credential) are read by value, and so is any name when a spec
    has no field rules at all."""
    masker = Masker(b"tollgate-test-hmac-key-0123456789")
    doc = {"db_password": "hunter2-Xy9", "GITHUB_TOKEN": TOKEN, "auth": "basic",
           "credential": TOKEN, "page_token": TOKEN, "description": TOKEN}
    masked, counts = masker.mask_json(doc, MaskSpec())
    assert masked == {"db_password": "[REDACTED:SECRET]", "GITHUB_TOKEN": "[REDACTED:SECRET]",
                      "auth": "basic", "credential": "[REDACTED:SECRET]",
                      "page_token": TOKEN, "description": TOKEN}
    assert counts["generic_secret"] == 3
    bare, _ = masker.mask_json({"password": "hunter2-Xy9"}, MaskSpec(fields=frozenset()))
    assert bare == {"password": "[REDACTED:SECRET]"}


def test_an_aws_secret_next_to_a_key_like_name_is_an_aws_secret() -> None:
    aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found("aws_secret_key", f"secret: {aws}") == [aws]
    assert found("aws_secret_key", f'{{"token": "{aws}"}}') == [aws]
    assert found("aws_secret_key", f"secret: {aws}Z") == []  # 41 characters


# A kilobyte of a generated secret: judged on its first 256 bytes, masked whole (longer
# than 256 bytes, it was left whole, as too long to judge, in text and in JSON alike).
_LONG_SECRET = "".join(random.Random(3).choices(
    string.ascii_letters + string.digits, k=1000))


@pytest.mark.parametrize(("text", "masked"), [
    (f"signing_key: {_LONG_SECRET}\nnext: 1", "signing_key: [REDACTED:SECRET]\nnext: 1"),
    (f'{{"webhook_secret": "{_LONG_SECRET}"}}', '{"webhook_secret": "[REDACTED:SECRET]"}'),
    (f"export APP_SECRET={_LONG_SECRET} ok", "export APP_SECRET=[REDACTED:SECRET] ok"),
], ids=["config-line", "json-in-text", "env"])
def test_a_long_generated_value_under_a_secret_s_name_is_masked_whole(
        text: str, masked: str) -> None:
    assert Masker(b"k" * 32).mask_text(text, MaskSpec())[0] == masked


def test_a_long_value_judged_on_its_start_stays_when_it_is_prose() -> None:
    text = "api_key_help: " + "use the key you were given at sign-up " * 20
    assert Masker(b"k" * 32).mask_text(text, MaskSpec()) == (text, {})


def test_a_long_generated_value_in_json_is_masked_whole() -> None:
    masked, counts = Masker(b"k" * 32).mask_json(
        {"webhook_secret": _LONG_SECRET, "note": "x"}, MaskSpec())
    assert masked == {"webhook_secret": "[REDACTED:SECRET]", "note": "x"}
    assert counts == {"generic_secret": 1}
