"""A value a URL or a form carries is read in its carrier's place (`Text.carrier_start`):
the words before the URL, the CSV column it is a cell of, or the secret's name it is
assigned to say what the value is, where the parameter's own name (`?id=`, `&v=`) does
not."""

from __future__ import annotations

import pytest

from extproc.masking import Masker, MaskSpec

SIN = "130692544"  # a valid Canadian SIN: found only after a cue
SPEC = MaskSpec()


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(b"k" * 32)


@pytest.mark.parametrize("text", [
    f"my social insurance number is https://app.example.com/cb?id={SIN}, can you update",
    f"name,sin,status\nRebecca,https://app.example.com/cb?next={SIN},ok\n",
    f"name,sin,status\nRebecca,field1={SIN}&submit=Send,ok\n",
    f"name,sin,status\nRebecca,x=1&v={SIN}&submit=Send,ok\n",
    f"social insurance number: https://a.example/authorize?redirect_uri="
    f"https://shop.example/pay?card={SIN} ok",
    f"kyc sin=https://app.example.com/cb?ref={SIN} step=2",
], ids=["words-before-url", "csv-column-url", "csv-column-form", "form-later-param",
        "url-in-url", "key-before-url"])
def test_an_id_a_url_or_form_carries_has_its_carrier_s_cue(masker: Masker, text: str
                                                           ) -> None:
    masked = masker.mask_text(text, SPEC)[0]
    assert SIN not in masked
    assert "[REDACTED:CA_SIN]" in masked


@pytest.mark.parametrize("text", [
    f"see https://app.example.com/cb?id={SIN} ok",
    f"name,order,status\nRebecca,https://app.example.com/cb?next={SIN},ok\n",
    f"my social insurance number is on file; ref https://app.example.com/x y=1 z?id={SIN}",
])
def test_with_no_cue_before_its_carrier_an_id_needing_one_is_left(masker: Masker, text: str
                                                                  ) -> None:
    """The carrier lends its context, no more: no cue, or one outside the URL's token."""
    assert masker.mask_text(text, SPEC)[0] == text


def test_a_phone_a_url_carries_is_labelled_by_the_words_before_it(masker: Masker) -> None:
    text = "reach me, my phone number is https://app.example.com/cb?q=9329 9959 ok"
    assert "9329 9959" not in masker.mask_text(text, SPEC)[0]


@pytest.mark.parametrize("text", [
    "jwt_secret: https://app.example.com/cb?ref=aX6G7eSyAISooUVr3voAqL96rI2lsysq1TZUzqO",
    'signing_key = "https://app.example.com/cb?id=wHEDeeAOEximgihWlru2ZBUe9fOIMRpToNj"',
    "api_secret=https://login.example/a?redirect_uri=https://shop.example/pay?key="
    "X7mgjo75DTqgX8lVjDI3Ek8IGWo5AwnmpgnEy&lang=en",
])
def test_a_secret_named_url_masks_what_its_parameters_carry(masker: Masker, text: str
                                                            ) -> None:
    masked = masker.mask_text(text, SPEC)[0]
    secret = next(w for w in ("aX6G7eSyAISooUVr3", "wHEDeeAOEximgih", "X7mgjo75DTqgX8l")
                  if w in text)
    assert secret not in masked
    assert "https://" in masked  # the URL itself is no secret: it stays readable
