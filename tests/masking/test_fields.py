"""Key-name rules: a value under a sensitive key is masked whole, whatever it looks like."""

from __future__ import annotations

import pytest

from extproc.masking import DEFAULT_FIELDS, Masker, MaskSpec

NO_DETECTORS = MaskSpec(detectors=frozenset())


@pytest.mark.parametrize(
    "key",
    ["password", "Password", "PASSWD", "api_key", "api-key", "apiKey", "APIKEY", "X-Api-Key",
     "access_token", "refreshToken", "client_secret", "card_number", "cvv", "private_key",
     "Authorization", "ssn", "secret", "token", "SecretAccessKey"],
)
def test_sensitive_keys(masker: Masker, key: str) -> None:
    masked, counts = masker.mask_json({key: "opaque value", "other": "kept"}, NO_DETECTORS)
    assert masked == {key: "[REDACTED:FIELD]", "other": "kept"}
    assert sum(counts.values()) == 1


@pytest.mark.parametrize(
    "key", ["tokens", "completion_tokens", "next_page_token", "token_type", "password_hint",
            "secretary", "name"],
)
def test_keys_that_only_look_alike(masker: Masker, key: str) -> None:
    value = {key: "opaque value"}
    assert masker.mask_json(value, NO_DETECTORS) == (value, {})


def test_every_scalar_under_a_sensitive_key(masker: Masker) -> None:
    value = {"secret": {"a": "x", "b": [1, 2.5, True, None, {"c": "y"}]}, "n": 1}
    masked, counts = masker.mask_json(value, NO_DETECTORS)
    r = "[REDACTED:FIELD]"
    assert masked == {"secret": {"a": r, "b": [r, r, r, None, {"c": r}]}, "n": 1}
    assert counts == {"field:secret": 5}


def test_a_field_value_a_detector_recognises_takes_its_label(masker: Masker) -> None:
    masked, counts = masker.mask_json({"card_number": 4111111111111111}, MaskSpec())
    assert masked == {"card_number": "[REDACTED:CREDIT_CARD]"}
    assert counts == {"field:cardnumber": 1}


def test_fields_can_be_added_or_replaced(masker: Masker) -> None:
    value = {"iban_note": "x", "password": "y"}
    added, _ = masker.mask_json(value, MaskSpec(detectors=frozenset(),
                                                fields=DEFAULT_FIELDS | {"iban-note"}))
    replaced, _ = masker.mask_json(value, MaskSpec(detectors=frozenset(),
                                                   fields={"iban_note"}))
    assert added == {"iban_note": "[REDACTED:FIELD]", "password": "[REDACTED:FIELD]"}
    assert replaced == {"iban_note": "[REDACTED:FIELD]", "password": "y"}


def test_field_strategy(masker: Masker) -> None:
    spec = MaskSpec(detectors=frozenset(), strategy="hash", overrides={"field": "partial"})
    masked, _ = masker.mask_json({"password": "correct horse battery"}, spec)
    assert masked == {"password": "******* ***** *******"}
