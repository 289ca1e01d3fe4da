"""Shapes of data that once leaked through masking (issue 15), each next to its look-alike
that must stay: the bypass suite (tests/policy/test_pack_bypass.py) judges decisions, not masking,
so masking's bypasses are kept here, permanently.

- tables: a SQL API's `{"columns": [...], "rows": [[...]]}`, or CSV, where key-name rules
  saw no key;
- numbers: a card as a float, and data held in JSON keys, which were never scanned;
- Unicode: other scripts' digits, Unicode spaces, invisible characters inside a value;
- separators and case: dotted or slashed groups, lower-case AWS key ids and IBANs;
- events: text cut across the events of any event stream, not only chat completions.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest

from extproc.codecs.refusal import Unavailable
from extproc.masking import Masker, MaskSpec, shadow
from extproc.masking.body import ByteStream, EventMasking, mask_body
from extproc.masking.policy_mask import spec_of

SPEC = MaskSpec()
CARD = "4111111111111111"
FULL_WIDTH, ARABIC_INDIC, DEVANAGARI = 0xFF10, 0x660, 0x966  # where each script's 0 is


def digits_in(zero: int, text: str) -> str:
    """`text` with its ASCII digits written in the script whose 0 is at `zero`."""
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


# (id, JSON value, what it must become)
JSON_SHAPES: list[tuple[str, Any, Any]] = [
    ("sql-columns-rows", {"columns": ["id", "password", "ssn"],
                          "rows": [[1, "hunter2-horse", "219-09-9999"], [2, "x", None]]},
     {"columns": ["id", "password", "ssn"],
      # The password is a secret by its looks too: the detector's label wins over the field's.
      "rows": [[1, "[REDACTED:SECRET]", "[REDACTED:US_SSN]"], [2, "[REDACTED:FIELD]", None]]}),
    ("datasette-arrays", {"ok": True, "columns": ["name", "api_key"],
                          "rows": [["Ada", "k-123"]], "truncated": False},
     {"ok": True, "columns": ["name", "api_key"], "rows": [["Ada", "[REDACTED:FIELD]"]],
      "truncated": False}),
    ("trino-named-columns", {"columns": [{"name": "Token", "type": "varchar"}],
                             "data": [["abc"], ["def"]]},
     {"columns": [{"name": "Token", "type": "varchar"}],
      "data": [["[REDACTED:FIELD]"], ["[REDACTED:FIELD]"]]}),
    ("card-as-float", {"n": 4111111111111111.0}, {"n": "[REDACTED:CREDIT_CARD]"}),
    ("card-as-exponent-float", {"n": 4.111111111111111e15}, {"n": "[REDACTED:CREDIT_CARD]"}),
    ("card-as-key", {CARD: {"exp": "12/29"}}, {"[REDACTED:CREDIT_CARD]": {"exp": "12/29"}}),
    ("email-as-key", {"ann@example.com": {"plan": "pro"}},
     {"[REDACTED:EMAIL_ADDRESS]": {"plan": "pro"}}),
]
JSON_LOOKALIKES: list[tuple[str, Any]] = [
    ("columns-without-rows", {"columns": ["password"], "count": 3}),
    ("rows-of-unnamed-columns", {"columns": ["id", "note"], "rows": [[1, "fine"]]}),
    ("float-failing-luhn", {"n": 4111111111111112.0}),
    ("float-with-fraction", {"n": 4111111111111111.5, "amount": 12.5}),
    ("order-id-key", {"4111111111111112": 1, "ORD-123456789": 2}),
]
# (id, text, what must not remain in it)
TEXT_SHAPES: list[tuple[str, str, str]] = [
    ("full-width-digits", "card " + digits_in(FULL_WIDTH, "4111 1111 1111 1111"),
     digits_in(FULL_WIDTH, "1111")),
    ("arabic-indic-digits", f"card {digits_in(ARABIC_INDIC, CARD)} ok",
     digits_in(ARABIC_INDIC, "1111")),
    ("devanagari-ssn", "ssn " + digits_in(DEVANAGARI, "123-45-6789"),
     digits_in(DEVANAGARI, "6789")),
    ("nbsp-groups", "card 4111\u00a01111\u00a01111\u00a01111", "1111"),
    ("narrow-nbsp-and-thin-space", "card 4111\u202f1111\u20091111\u20091111", "1111"),
    ("zero-width-space", "card 4111\u200b1111\u200b1111\u200b1111", "1111"),
    ("zero-width-joiners", "card 4111\u200c1111\u200d1111\u20601111", "1111"),
    ("soft-hyphen", "card 41\u00ad11111111111111", "1111"),
    ("en-dash-ssn", "ssn 123\u201345\u20136789", "6789"),
    ("dotted-card", "card 4111.1111.1111.1111", "1111"),
    ("slashed-card", "card 4111/1111/1111/1111", "1111"),
    ("dotted-ssn-after-word", "SSN: 123.45.6789", "6789"),
    ("slashed-ssn-after-word", "ssn 123/45/6789", "6789"),
    ("card-zero-fraction", "total 4111111111111111.0 due", "4111111111111111"),
    ("card-exponent", "value 4.111111111111111e15", "4.111111111111111"),
    ("card-exponent-upper", "value 4.111111111111111E+15", "4.111111111111111"),
    ("aws-key-id-lower", "key akiaiosfodnn7example", "akiaiosfodnn7example"),
    ("iban-lower", "iban de89370400440532013000", "de89370400440532013000"),
    ("iban-lower-spaced", "iban de89 3704 0044 0532 0130 00", "0532 0130"),
    ("full-width-email", "mail " + full_width("ann@example.com"), full_width("ann")),
    # issue 39: every shape a value takes in text
    ("tabbed-card", "card\t4111\t1111\t1111\t1111\tok", "1111\t1111"),
    ("underscored-card", "card 4111_1111_1111_1111", "1111_1111"),
    ("spaced-dash-card", "card 4111 - 1111 - 1111 - 1111", "1111 - 1111"),
    ("glued-card", "cardno4111111111111111exp", "4111111111111111"),
    ("spelled-email", "mail jo.doe (at) example (dot) com", "jo.doe"),
    ("word-spelled-email", "mail jo dot doe at example dot com now", "jo dot doe"),
    ("url-encoded-email", "mailto:jo%40example.com", "jo%40"),
    ("glued-jwt", "authBearereyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "c2lnbmF0"),
    ("base64-pem", "key " + "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUJWUUlCQURBTkJna3Foa2lHOXcw"
     "QkFRRUZBQVNDQVQ4d2dnRTdBZ0VBQWtFQQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0t", "LS0tLS1C"),
    ("putty-key", "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\n"
     "AAAAgQCxyz0123456789abcdefABCDEF\nPrivate-MAC: 0123456789abcdef", "AAAAgQCxyz"),
]
TEXT_LOOKALIKES: list[tuple[str, str]] = [
    ("full-width-order-id", "order " + digits_in(FULL_WIDTH, "4111 1111 1111 1112")),  # Luhn
    ("dotted-version", "build 2024.0101.1234.5678"),
    ("slashed-ids-without-word", "ref 123/45/6789 and 123.45.6789"),
    ("decimal-fraction", "ratio 4111111111111111.5"),
    ("exponent-with-fraction", "4.1111111111111115e15"),
    ("asia-word", "region asiapacificheadquart"),
    ("hex-id-not-iban", "id de89370400440532013001"),  # fails mod-97
    ("long-run-of-invisibles", "4111" + "\u200b" * 17 + "111111111111"),
    ("accents-and-dashes", "Grüße \u2014 naïve café, 12\u201314 Uhr"),
    ("hex-id-with-a-card-run", "sha c0ffee4111111111111111beef"),
    ("table-row-of-numbers", "5612\t3456\t7890\t1234\t5678"),
    ("prose-at-a-site", "I looked at example.com (at least twice)"),
    ("assembly-version", 'AssemblyVersion("10.2.3.4")'),
    ("pinned-version", "pip install pkg==10.2.3.4 and foo-10.2.3.4.tar.gz"),
]


@pytest.mark.parametrize(("value", "expected"),
                         [pytest.param(v, e, id=i) for i, v, e in JSON_SHAPES])
def test_json_shapes_are_masked(masker: Masker, value: Any, expected: Any) -> None:
    assert masker.mask_json(value, SPEC)[0] == expected


@pytest.mark.parametrize("value", [pytest.param(v, id=i) for i, v in JSON_LOOKALIKES])
def test_json_lookalikes_stay(masker: Masker, value: Any) -> None:
    assert masker.mask_json(value, SPEC) == (value, {})


@pytest.mark.parametrize(("text", "secret"),
                         [pytest.param(t, s, id=i) for i, t, s in TEXT_SHAPES])
def test_text_shapes_are_masked(masker: Masker, text: str, secret: str) -> None:
    masked, counts = masker.mask_text(text, SPEC)
    assert secret not in masked and counts, masked
    # The same in a stream cut anywhere, and inside JSON.
    for cut in range(len(text) + 1):
        stream = masker.stream(SPEC)
        assert stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.finish() == masked
    assert secret not in json.dumps(masker.mask_json({"note": text}, SPEC)[0],
                                    ensure_ascii=False)


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in TEXT_LOOKALIKES])
def test_text_lookalikes_stay(masker: Masker, text: str) -> None:
    assert masker.mask_text(text, SPEC) == (text, {})


@pytest.mark.parametrize(("media", "body", "expected"), [
    ("text/csv", 'id,Password,note\r\n1,hunter2,"a, b"\r\n2,"say ""hi""",x\r\n',
     'id,Password,note\r\n1,[REDACTED:FIELD],"a, b"\r\n2,"[REDACTED:FIELD]",x\r\n'),
    ("text/tab-separated-values; charset=utf-8", "name\tapi_key\nAda\tk-1\nBob\t\n",
     "name\tapi_key\nAda\t[REDACTED:FIELD]\nBob\t\n"),
    # Not declared a table: a first line with commas is no header.
    ("text/plain", "id,password\n1,hunter2\n", "id,password\n1,hunter2\n"),
    ("text/csv", "id,passwords_reset\n1,3\n", "id,passwords_reset\n1,3\n"),
])
def test_a_csv_header_names_the_columns_key_name_rules_follow(
        masker: Masker, media: str, body: str, expected: str) -> None:
    assert mask_body(masker, SPEC, media, body.encode())[0].decode() == expected


def test_a_value_in_another_script_hashes_as_its_ascii_twin(masker: Masker) -> None:
    spec = MaskSpec(strategy="hash")
    card = "4111 1111 1111 1111"
    assert masker.mask_text(digits_in(FULL_WIDTH, card), spec)[0] == masker.mask_text(
        card, spec)[0]


def test_the_fold_tables_are_unicodes() -> None:
    """shadow.py lists the characters it folds rather than scanning Unicode at import."""
    def category(cp: int) -> str:
        return unicodedata.category(chr(cp))

    points = [cp for cp in range(0x80, 0x110000) if not 0xD800 <= cp <= 0xDFFF]
    folds = {c.decode(): f.decode() for c, f in shadow._FOLD.items()}
    assert {c for c, f in folds.items() if f == ""} == {
        chr(cp) for cp in points if category(cp) == "Cf"}
    assert {c for c, f in folds.items() if f == " "} == {
        chr(cp) for cp in points if category(cp) == "Zs"}
    assert {c for c in folds if unicodedata.category(c) == "Nd"} == {
        chr(cp) for cp in points if category(cp) == "Nd"}
    assert all(folds[c] == str(unicodedata.decimal(c)) for c in folds
               if unicodedata.category(c) == "Nd")


# -- events: text cut across the events of any stream ----------------------------------

SECRET_TEXT = "Her SSN is 512-34-6789, card 4111 1111 1111 1111, key akiaiosfodnn7example."


def sse(payloads: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in payloads)


def generic(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"text": p, "seq": i} for i, p in enumerate(pieces)]


def responses(pieces: list[str]) -> list[dict[str, Any]]:
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    return [*({"type": "response.output_text.delta", **ids, "delta": p} for p in pieces),
            {"type": "response.output_text.done", **ids, "text": "".join(pieces)}]


def anthropic(pieces: list[str]) -> list[dict[str, Any]]:
    return [*({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": p}} for p in pieces),
            {"type": "content_block_stop", "index": 0}]


def gemini(pieces: list[str]) -> list[dict[str, Any]]:
    return [{"candidates": [{"content": {"parts": [{"text": p}], "role": "model"},
                             "index": 0}]} for p in pieces]


def text_of(out: bytes, kind: str) -> str:
    """What a client assembles from the stream's text pieces."""
    text = []
    for block in out.decode().split("\n\n"):
        if not block.startswith("data: {"):
            continue
        event = json.loads(block[6:])
        if kind == "generic":
            text.append(event["text"])
        elif kind == "responses" and event["type"].endswith(".delta"):
            text.append(event["delta"])
        elif kind == "anthropic" and event["type"] == "content_block_delta":
            text.append(event["delta"]["text"])
        elif kind == "gemini":
            text.append(event["candidates"][0]["content"]["parts"][0]["text"])
    return "".join(text)


STREAMS = {"generic": generic, "responses": responses, "anthropic": anthropic,
           "gemini": gemini}


@pytest.mark.parametrize("kind", list(STREAMS))
def test_text_cut_between_two_events_anywhere_is_masked(masker: Masker, kind: str) -> None:
    spec = spec_of([{"detectors": ["all"]}])
    assert spec is not None
    expected = masker.mask_text(SECRET_TEXT, spec)[0]
    for cut in range(1, len(SECRET_TEXT)):
        data = sse(STREAMS[kind]([SECRET_TEXT[:cut], SECRET_TEXT[cut:]]))
        stream = ByteStream(masker, spec, events=True)
        out = stream.feed(data) + stream.finish()
        assert text_of(out, kind) == expected, cut


@pytest.mark.slow  # every cut of every stream shape
@pytest.mark.parametrize("kind", list(STREAMS))
def test_a_stream_cut_at_every_byte_one_character_per_event(masker: Masker, kind: str) -> None:
    spec = spec_of([{"detectors": ["all"]}])
    assert spec is not None
    data = sse(STREAMS[kind](list(SECRET_TEXT)))
    whole = ByteStream(masker, spec, events=True)
    expected = whole.feed(data) + whole.finish()
    assert text_of(expected, kind) == masker.mask_text(SECRET_TEXT, spec)[0]
    for cut in range(1, len(data), 7):
        stream = ByteStream(masker, spec, events=True)
        assert stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.finish() == expected


def test_a_stream_ends_before_the_event_that_closes_it(masker: Masker) -> None:
    """Held text goes out in a delta before the Responses API's `.done` (whose whole text
    is masked as JSON), so a client's deltas add up before it."""
    masking = EventMasking(masker, SPEC)
    out = b"".join(masking.event(sse([p]), p)
                   for p in responses(["card 4111 1111 ", "1111 1111 thanks"]))
    events = [json.loads(b[6:]) for b in out.decode().split("\n\n") if b]
    assert [e["type"] for e in events][-1] == "response.output_text.done"
    deltas = "".join(e["delta"] for e in events if e["type"].endswith(".delta"))
    assert deltas == events[-1]["text"] == "card [REDACTED:CREDIT_CARD] thanks"


def test_records_with_whole_values_are_masked_each_as_it_is(masker: Masker) -> None:
    """An event stream of JSON records (the demo's /api/events) has no text that streams:
    each event is masked whole, and released at once."""
    stream = ByteStream(masker, SPEC, events=True)
    first = sse([{"name": "Ada", "email": "ada@example.com", "note": "card " + CARD}])
    out = json.loads(stream.feed(first)[6:])
    assert out == {"name": "Ada", "email": "[REDACTED:EMAIL_ADDRESS]",
                   "note": "card [REDACTED:CREDIT_CARD]"}


def test_a_field_rule_value_is_never_streamed_as_text(masker: Masker) -> None:
    payload = {"password": {"text": "hunter2"}}
    out = EventMasking(masker, SPEC).event(sse([payload]), payload)
    assert json.loads(out[6:]) == {"password": {"text": "[REDACTED:FIELD]"}}


def test_what_is_held_goes_out_before_done(masker: Masker) -> None:
    """Clients stop reading at `data: [DONE]`: held text is released before it."""
    stream = ByteStream(masker, SPEC, events=True)
    data = sse(generic(["card 4111 1111 ", "1111 1111 ok"])) + b"data: [DONE]\n\n"
    out = stream.feed(data) + stream.finish()
    assert out.endswith(b"data: [DONE]\n\n")
    assert text_of(out, "generic") == "card [REDACTED:CREDIT_CARD] ok"


@pytest.mark.parametrize("charset", ["utf-16le", "utf-16", "utf-32", "latin-1", "UTF-8"])
@pytest.mark.parametrize("media", ["text/plain", "application/json"])
def test_a_body_is_read_and_written_back_in_its_declared_charset(
        masker: Masker, charset: str, media: str) -> None:
    """Read as UTF-8, a UTF-16 body's SSN is no run of digits to a detector."""
    text = json.dumps({"note": "ssn 078-05-1120"}) if media == "application/json" \
        else "my ssn is 078-05-1120"
    masked, counts = mask_body(masker, SPEC, f"{media}; charset={charset}",
                               text.encode(charset))
    assert "078-05-1120" not in masked.decode(charset)
    assert counts


def test_a_body_in_a_charset_tollgate_cannot_read_is_refused(masker: Masker) -> None:
    with pytest.raises(Unavailable) as refused:
        mask_body(masker, SPEC, "text/plain; charset=x-made-up", b"my ssn is 078-05-1120")
    assert refused.value.error == "unmaskable_body"
    assert "x-made-up" in str(refused.value)


@pytest.mark.parametrize("content_type", [
    "text/plain; charset=utf-8; charset=utf-16le",
    'text/plain; charset="utf-16le"; CHARSET=latin-1',
])
def test_a_body_whose_charset_is_named_twice_differently_is_refused(
        masker: Masker, content_type: str) -> None:
    """A reader that honours the other name (the last, as some do) would read what
    tollgate did not: UTF-16 digits are no digits to a detector reading UTF-8."""
    with pytest.raises(Unavailable) as refused:
        mask_body(masker, SPEC, content_type, "my ssn is 078-05-1120".encode("utf-16le"))
    assert refused.value.error == "unmaskable_body"


def test_the_same_charset_named_twice_is_read_in_it(masker: Masker) -> None:
    masked, _ = mask_body(masker, SPEC, "text/plain; charset=UTF-8; charset=utf8",
                          b"my ssn is 078-05-1120")
    assert b"078-05-1120" not in masked


@pytest.mark.parametrize("text", ["/files/078-05-1120", "/078-05-1120.txt",
                                  "see /u/078-05-1120/profile"])
def test_a_dashed_ssn_in_a_path_segment_is_found(masker: Masker, text: str) -> None:
    assert "078-05-1120" not in masker.mask_text(text, SPEC)[0]
