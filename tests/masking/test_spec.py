"""MaskSpec: refuses what could never work, and reads a policy decision's `mask`."""

from __future__ import annotations

import pytest

from extproc.masking import ALL_DETECTORS, DEFAULT_FIELDS, DETECTORS, Masker, MaskSpec


def test_every_detector_has_a_stable_name_and_entity() -> None:
    assert {d.name for d in DETECTORS} == {
        "credit_card", "us_ssn", "iban", "email", "phone", "ip_address", "aws_access_key_id",
        "aws_secret_key", "github_token", "gitlab_token", "slack_token", "stripe_key",
        "openai_key", "jwt", "private_key", "connection_password", "vendor_key",
        "generic_secret", "uk_nino", "in_aadhaar", "de_tax_id", "nl_bsn", "es_nif",
        "it_fiscal_code", "fr_nir", "pl_pesel", "se_personnummer", "dk_cpr", "ca_sin", "au_tfn",
        "fi_hetu", "br_cpf", "ch_ahv", "us_itin", "mx_curp", "jp_my_number", "kr_rrn",
        "cn_resident_id", "sg_nric", "za_id", "tr_kimlik", "il_id", "uk_nhs", "br_cnpj",
        "au_medicare", "au_abn", "in_pan", "au_acn", "th_tnin", "it_vat", "sg_uen", "ng_nin",
        "us_passport", "in_passport", "it_passport", "it_identity_card", "in_voter",
        "us_driver_license", "it_driver_license", "us_bank_number", "in_vehicle_registration",
        "person_name", "postal_address", "date_of_birth", "undecoded",
    }
    assert all(d.entity.isupper() for d in DETECTORS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"detectors": {"credit_card", "aws_access_key"}}, "unknown detectors: aws_access_key"),
        ({"strategy": "scramble"}, "unknown strategy 'scramble'"),
        ({"overrides": {"us_ssn": "scramble"}}, "unknown strategy 'scramble'"),
        ({"overrides": {"ssn": "hash"}}, "overrides for unknown detectors: ssn"),
    ],
)
def test_refuses_what_could_never_work(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskSpec(**kwargs)


def test_fields_are_normalised() -> None:
    assert MaskSpec(fields={"API-Key", "Card_Number"}).fields == {"apikey", "cardnumber"}


def test_specs_are_values() -> None:
    """Equal specs are equal and hash alike, so a caller can cache by spec."""
    a = MaskSpec(detectors={"us_ssn"}, overrides={"us_ssn": "hash"})
    b = MaskSpec(detectors=frozenset({"us_ssn"}), overrides={"us_ssn": "hash"})
    assert a == b and hash(a) == hash(b)
    assert a != MaskSpec(detectors={"us_ssn"})


def test_from_policy() -> None:
    spec = MaskSpec.from_policy({"fields": ["iban"], "detectors": ["credit_card"],
                                 "strategy": ["hash"]})
    assert spec == MaskSpec(detectors={"credit_card"}, fields={"iban"}, strategy="hash")
    assert MaskSpec.from_policy({"detectors": ["all"]}).detectors == ALL_DETECTORS
    assert MaskSpec.from_policy({"detectors": ["all"]}).fields == DEFAULT_FIELDS
    assert MaskSpec.from_policy({}).detectors == frozenset()


@pytest.mark.parametrize(
    ("mask", "message"),
    [({"field": ["ssn"]}, "unknown mask keys: field"),
     ({"strategy": ["hash", "redact"]}, "one strategy"),
     ({"detectors": ["aws_access_key"]}, "unknown detectors")],
)
def test_from_policy_refuses(mask: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskSpec.from_policy(mask)


def test_analyze_reports_spans_in_characters(masker: Masker) -> None:
    text = "Grüße 😀 ssn 123-45-6789, mail jo@example.com"
    spans = masker.analyze(text, MaskSpec(detectors={"us_ssn", "email"}))
    assert [(text[s:e], name) for s, e, name in spans] == [
        ("123-45-6789", "us_ssn"), ("jo@example.com", "email")]
