"""Values read as they decode (extproc/masking/decoding.py): each encoding's value masked
over its encoded span, written back in that encoding, nested encodings, the bounds, the
look-alikes that must stay, and streams that mask as the whole text does."""

from __future__ import annotations

import base64
import codecs
import contextlib
import html
import json
import quopri
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking import ALL_DETECTORS, Masker, MaskSpec, decoding
from extproc.masking.decoding import MAX_BLOCK, MAX_UNDECODED

SPEC = MaskSpec()
SSN, CARD, MAIL = "512-34-6789", "4111 1111 1111 1111", "ann.lee@example.com"
AWS = "AKIAIOSFODNN7EXAMPLE"


def _entities(text: str) -> str:
    return "".join(f"&#{ord(c)};" for c in text)


def _escapes(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _qp(text: str) -> str:
    """Quoted-printable with a soft line break in the middle, as a long line gets one."""
    coded = quopri.encodestring(text.encode(), quotetabs=True).decode()
    cut = 6
    while "=" in coded[cut - 2:cut]:  # not inside an `=XX`
        cut += 1
    return coded[:cut] + "=\r\n" + coded[cut:]


def _mime(text: str) -> str:
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


# name, encode, decode (what the masked text must still decode with)
ENCODINGS: list[tuple[str, Callable[[str], str], Callable[[str], str]]] = [
    ("percent", lambda v: quote(v, safe=""), unquote),
    ("percent twice", lambda v: quote(quote(v, safe=""), safe=""), lambda v: unquote(unquote(v))),
    ("form", lambda v: "q=" + quote_plus(v), lambda v: unquote_plus(v.removeprefix("q="))),
    ("entities", _entities, html.unescape),
    ("escapes", _escapes, lambda v: json.loads(f'"{v}"')),
    ("quoted-printable", _qp, lambda v: quopri.decodestring(v.encode()).decode()),
    ("mime word", _mime, lambda v: base64.b64decode(v[10:-2]).decode()),
    ("base64", lambda v: base64.b64encode(v.encode()).decode(),
     lambda v: base64.b64decode(v).decode()),
    ("base64url", lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
     lambda v: base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).decode()),
    ("hex", lambda v: v.encode().hex(), lambda v: bytes.fromhex(v).decode()),
    ("base32", lambda v: base64.b32encode(v.encode()).decode(),
     lambda v: base64.b32decode(v).decode()),
]
VALUES = [("us_ssn", f"ssn {SSN}", SSN), ("credit_card", f"card {CARD}", CARD),
          ("email", f"mail {MAIL}", MAIL), ("aws_access_key_id", f"key {AWS}", AWS)]


@pytest.mark.parametrize(("encoding", "encode", "decode"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
@pytest.mark.parametrize(("kind", "plain", "value"), VALUES, ids=[v[0] for v in VALUES])
def test_an_encoded_value_is_masked_and_stays_in_its_encoding(
        masker: Masker, encoding: str, encode: Callable[[str], str],
        decode: Callable[[str], str], kind: str, plain: str, value: str) -> None:
    encoded = encode(plain)
    out, counts = masker.mask_text(f"got: {encoded} ok", SPEC)
    assert counts[kind] == 1, (encoded, out)
    assert out.startswith("got: ") and out.endswith(" ok")
    decoded = decode(out[5:-3])  # still in its encoding
    assert value not in decoded and "[REDACTED:" in decoded


def test_the_hash_strategy_hashes_the_value_however_it_was_spelled(masker: Masker) -> None:
    spec = MaskSpec(strategy="hash")
    plain = masker.mask_text(f"ssn {SSN}", spec)[0]
    coded = masker.mask_text(f"ssn {_entities(SSN)}", spec)[0]
    assert plain == coded  # entities' output is plain text: the same hash token


@pytest.mark.parametrize("text", [
    # A URL that is itself a parameter, its card percent-encoded twice.
    "redirect_uri=" + quote("https://shop.example/pay?card=" + quote(CARD), safe=""),
    # base64 of JSON holding base64.
    base64.b64encode(json.dumps({"blob": base64.b64encode(f"ssn {SSN}".encode()).decode()})
                     .encode()).decode(),
    # A private key in a form body, its line breaks encoded.
    "private_key=" + quote_plus("-----BEGIN RSA PRIVATE KEY-----\nMIICXAIBAAKBgQCqGKukO1De7zh"
                                "ZjbFBKBvkwkRbsGh1D2sfQ8aMRn4\n-----END RSA PRIVATE KEY-----"),
    # A value split by a quoted-printable soft line break.
    "ssn=3D512-34-=\r\n6789",
])
def test_nested_and_cut_encodings_are_read_through(masker: Masker, text: str) -> None:
    out, counts = masker.mask_text(text, SPEC)
    assert sum(counts.values()) >= 1, out
    for secret in (SSN, CARD.replace(" ", ""), "MIICXAIBAAKBgQCqGKukO1De7zh", "6789"):
        assert secret not in _fully_decoded(out)


def _fully_decoded(text: str) -> str:
    """`text` with every encoding of the tests above undone, as often as it changes."""
    for _ in range(4):
        text = unquote_plus(text)
        text = quopri.decodestring(text.encode()).decode("utf-8", "replace")
        for word in text.split():
            for candidate in (word, word.split("=", 1)[-1]):
                with contextlib.suppress(ValueError):
                    text += " " + base64.b64decode(candidate, validate=True).decode()
    return text


CYRILLIC_A, CYRILLIC_E, CYRILLIC_O, GREEK_O = "\u0430", "\u0435", "\u043e", "\u03bf"


def test_a_run_found_as_it_is_is_masked_whole_and_not_read_again_decoded(
        masker: Masker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-digit card number is also a hex run (`5555555555554444` decodes to
    `UUUUUUDD`): found as a card, it is masked whole, and no view of it is scanned (the
    hundreds of bytes around it read again, doubling a JSON answer's cost); a hex run no
    detector found as it is is still read decoded."""
    views: list[object] = []
    real = decoding.view

    def counted(*args: Any) -> Any:
        views.append(args)
        return real(*args)

    monkeypatch.setattr(decoding, "view", counted)
    out, counts = masker.mask_text(json.dumps({"card": "5555555555554444",
                                               "note": "x " * 200}), SPEC)
    assert "5555555555554444" not in out and counts["credit_card"] == 1
    assert views == []
    out, counts = masker.mask_text(f"got: {f'ssn {SSN}'.encode().hex()} ok", SPEC)
    assert counts["us_ssn"] == 1 and len(views) == 1


@pytest.mark.parametrize(("text", "kind"), [
    (f"mail {CYRILLIC_A}nn.l{CYRILLIC_E}{CYRILLIC_E}@{CYRILLIC_E}x{CYRILLIC_A}mple.com", "email"),
    ("key \u0410\u041a\u0406\u0410IOSFODNN7EXAMPLE", "aws_access_key_id"),
    (f"token ghp_16C7e42F292c6912E7710c838347Ae178B4{GREEK_O}", "github_token"),
    (f"https://db.example/x?url=postgres://app:s3cr{CYRILLIC_E}t@db{CYRILLIC_O}:5432", None),
])
def test_letters_of_other_scripts_that_read_as_latin_hide_no_value(
        masker: Masker, text: str, kind: str | None) -> None:
    out, counts = masker.mask_text(text, SPEC)
    assert out != text and "[REDACTED:" in out
    if kind is not None:
        assert counts[kind] == 1


@pytest.mark.parametrize("text", [
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u0421\u0435\u0440\u0433\u0435\u0439",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "version 1.2 \u0432\u0435\u0440\u0441\u0438\u044f, ok",
])
def test_words_all_in_another_script_are_left_as_they_are(masker: Masker, text: str) -> None:
    assert masker.mask_text(text, SPEC) == (text, {})


KEY_LINES = ["-----BEGIN RSA PRIVATE KEY-----\n",
             "MIICXAIBAAKBgQCqGKukO1De7zhZjbFBKBvkwkRbsGh1D2sfQ8aMRn4tNzPTzzpH\n",
             "ZXhhbXBsZWtleWV4YW1wbGVrZXlleGFtcGxla2V5ZXhhbXBsZWtleWV4YW1wbGVr\n",
             "-----END RSA PRIVATE KEY-----\n"]


def test_a_key_kept_as_a_list_of_lines_is_masked_in_every_line(masker: Masker) -> None:
    """A notebook's output keeps a printed file as a list of its lines: the key is the
    lines read joined, and no line of it passes (the BEGIN line alone was masked)."""
    doc = {"cells": [{"outputs": [{"name": "stdout", "text": ["$ cat id_rsa\n", *KEY_LINES]}]}]}
    out, counts = masker.mask_json(doc, SPEC)
    lines = out["cells"][0]["outputs"][0]["text"]
    assert lines[0] == "$ cat id_rsa\n" and len(lines) == 5
    assert all(line.startswith("[REDACTED:PRIVATE_KEY]") for line in lines[1:])
    assert counts["private_key"] == 4


@pytest.mark.parametrize(("items", "kind"), [
    (["4111 1111", " 1111 1111"], "credit_card"),
    (["ann.lee", "@example.com"], "email"),
    (["AKIAIOSF", "ODNN7EXAMPLE"], "aws_access_key_id"),
])
def test_a_value_cut_between_strings_is_masked_in_each(
        masker: Masker, items: list[str], kind: str) -> None:
    out, counts = masker.mask_json({"parts": items, "other": ["a", "b"]}, SPEC)
    assert all(part.startswith("[REDACTED:") for part in out["parts"]) and counts[kind] == 2
    assert out["other"] == ["a", "b"]
    text = f"log: {json.dumps(items)} done"
    masked, counts = masker.mask_text(text, SPEC)
    assert json.loads(masked[5:-5]) == [f"[REDACTED:{_entity_of(kind)}]"] * 2


def _entity_of(kind: str) -> str:
    return {"credit_card": "CREDIT_CARD", "email": "EMAIL_ADDRESS",
            "aws_access_key_id": "AWS_ACCESS_KEY_ID"}[kind]


def test_a_string_beside_a_value_is_not_taken_into_it(masker: Masker) -> None:
    """A table's rows as lists of strings (an MCP tool's JSON answer): an address read
    joined with the name before it (`Lovelaceada@...`) is still only the address."""
    rows = [["Ada Lovelace", "ada@example.com"], ["Bob", "bob@example.com"]]
    masked = [[name, "[REDACTED:EMAIL_ADDRESS]"] for name, _ in rows]
    assert masker.mask_json({"rows": rows}, SPEC)[0] == {"rows": masked}
    out, _ = masker.mask_text(json.dumps({"rows": rows}), SPEC)
    assert json.loads(out) == {"rows": masked}


def test_a_record_s_fields_in_a_list_are_not_read_joined(masker: Masker) -> None:
    """A list that holds more than strings is a record's fields, not pieces of a text: a
    number before an address is not the address's start."""
    out, counts = masker.mask_json({"row": ["7", MAIL, [MAIL]]}, SPEC)
    assert out["row"][0] == "7" and counts["email"] == 2


@pytest.mark.parametrize("doc", [
    {"tags": ["prod", "eu-west-1", "db"], "years": ["2021", "2022", "2023", "2024"]},
    {"name": "ann", "domain": "example.com", "lines": ["hello", "world"]},
])
def test_lists_whose_items_joined_hold_nothing_are_left_as_they_are(
        masker: Masker, doc: dict[str, object]) -> None:
    assert masker.mask_json(doc, SPEC) == (doc, {})
    assert masker.mask_text(json.dumps(doc), SPEC) == (json.dumps(doc), {})


def test_base64_written_with_padding_bits_set_is_read_as_it_decodes(masker: Masker) -> None:
    """A padding bit set changes no decoded byte: a way past a reader that only reads
    base64 written canonically, not past this one."""
    canonical = base64.b64encode(f"card {CARD}!".encode()).decode()  # ends "IQ=="
    odd = canonical[:-3] + "R=="
    assert base64.b64decode(odd) == base64.b64decode(canonical) and odd != canonical
    out, counts = masker.mask_text(odd, SPEC)
    assert counts["credit_card"] == 1 and CARD not in base64.b64decode(out).decode()


@pytest.mark.parametrize("text", [
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "id 550e8400-e29b-41d4-a716-446655440000 and internationalization",
    "image/png;base64," + base64.b64encode(bytes(range(256)) * 4).decode(),
    "q=cheap+flights&page=2 and a &amp; b &lt; c, x=3D y, path %2Fhome",
    "=?UTF-8?B?SGVsbG8gd29ybGQ=?= and \\u00e9t\\u00e9",
])
def test_encoded_text_with_nothing_in_it_is_left_as_it_is(masker: Masker, text: str) -> None:
    assert masker.mask_text(text, SPEC) == (text, {})


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_base64_wrapped_in_lines_is_read_whole_and_wrapped_again(
        masker: Masker, end: str) -> None:
    """Mail writes base64 in lines of 76, PEM in 64: a value cut by a line end is one."""
    coded = base64.b64encode(("note: " + "x" * 60 + f" ssn {SSN} done").encode()).decode()
    wrapped = end.join(coded[k:k + 64] for k in range(0, len(coded), 64))
    out, counts = masker.mask_text(f"body:\n{wrapped}\n-- end", SPEC)
    assert counts["us_ssn"] == 1
    block = out.removeprefix("body:\n").removesuffix("\n-- end")
    assert all(len(line.rstrip("\r")) == 64 for line in block.split("\n")[:-1])
    assert SSN not in base64.b64decode(block.replace(end, "")).decode()


def test_a_file_as_an_api_gives_it_in_base64_is_read_whole(masker: Masker) -> None:
    """A 60 KB file in base64 (GitHub's contents API, `base64 big.env`): decoded, its
    value masked, the rest left."""
    filler = "lorem ipsum " * 5000
    coded = base64.b64encode(f"{filler} ssn {SSN} {filler}".encode()).decode()
    masked, counts = masker.mask_text(f'{{"content": "{coded}"}}', SPEC)
    assert counts == {"us_ssn": 1}
    inner = base64.b64decode(json.loads(masked)["content"]).decode()
    assert SSN not in inner and inner.startswith("lorem ipsum")


def test_a_text_block_longer_than_the_bound_is_masked_whole_and_counted(
        masker: Masker) -> None:
    """Past `MAX_BLOCK` nothing is decoded: a run that begins as text is what the bounds
    could not read, and no way around the detectors."""
    filler = "lorem ipsum " * (MAX_BLOCK // 8)
    big = base64.b64encode(f"{filler} ssn {SSN}".encode()).decode()
    assert len(big) > MAX_BLOCK
    masked, counts = masker.mask_text(f"file: {big} end", SPEC)
    assert (masked, counts) == ("file: [REDACTED:UNDECODED] end", {"undecoded": 1})
    binary = base64.b64encode(bytes(range(256)) * (MAX_BLOCK // 128)).decode()
    assert masker.mask_text(binary, SPEC)[0] == binary  # an image's bytes: no text
    left_out = MaskSpec(detectors=ALL_DETECTORS - {"undecoded"})
    assert masker.mask_text(big, left_out) == (big, {})  # a policy may leave it


@pytest.mark.parametrize("step", [4096, 65536, 300_000])
def test_a_stream_masks_a_text_block_past_the_bound_as_the_whole_text_does(
        masker: Masker, step: int) -> None:
    """Held while it is open, however long: released masked whole once it ends."""
    filler = "lorem ipsum " * (MAX_BLOCK // 8)
    text = "head " * 100 + base64.b64encode(f"{filler} ssn {SSN}".encode()).decode() + " tail"
    stream = masker.stream(SPEC)
    out = "".join(stream.feed(text[i:i + step]) for i in range(0, len(text), step))
    assert out + stream.finish() == masker.mask_text(text, SPEC)[0]


def test_a_run_past_the_undecoded_bound_passes_and_a_stream_holds_it_no_longer(
        masker: Masker) -> None:
    """A stream holds an open run back to mask it whole: past `MAX_UNDECODED` it is a
    document, released as it comes (the stream's memory is bounded) and passed whole."""
    line = base64.b64encode(b"lorem ipsum dolor " * 4).decode()
    run = line * ((MAX_UNDECODED // len(line)) + 2)
    stream = masker.stream(SPEC)
    most = 0
    for i in range(0, len(run), 1 << 18):
        stream.feed(run[i:i + (1 << 18)])
        most = max(most, stream.held)
    assert most < MAX_UNDECODED + (1 << 19)
    assert masker.mask_text(run, SPEC) == (run, {})


def test_what_the_deepest_view_still_holds_encoded_is_masked_whole(masker: Masker) -> None:
    """A value encoded four times, one more than the views nest: the word it is in."""
    four = "u=" + quote(quote(quote(quote(CARD, safe=""), safe=""), safe=""), safe="")
    masked, counts = masker.mask_text(four + " ok", SPEC)
    assert counts == {"undecoded": 1}
    assert "1111" not in unquote(unquote(unquote(unquote(masked))))
    assert masked.startswith("u=") and masked.endswith(" ok")
    three = "u=" + quote(quote(quote(CARD, safe=""), safe=""), safe="")
    assert masker.mask_text(three, SPEC)[1] == {"credit_card": 1}


def test_values_in_json_strings_are_read_decoded(masker: Masker) -> None:
    doc = {"content": base64.b64encode(f"password: hunter2hunter2\nssn {SSN}".encode()).decode(),
           "next": "/cb?card=" + quote(CARD),
           "id": "550e8400-e29b-41d4-a716-446655440000"}
    out, counts = masker.mask_json(doc, SPEC)
    assert SSN not in base64.b64decode(out["content"]).decode()
    assert CARD not in unquote(out["next"])
    assert out["id"] == doc["id"]
    assert counts["us_ssn"] == 1 and counts["credit_card"] == 1


def test_letters_of_other_scripts_next_to_a_bounded_value_do_not_break_masking(
        masker: Masker) -> None:
    """A value under a key-name rule is read up to a bound in bytes, which can end inside
    a Cyrillic letter: its finding is widened to whole letters, not cut there."""
    text = "id_token=" + "\u0435\u0443J" * 400  # two Cyrillic letters, then a Latin one
    out, counts = masker.mask_text(text, SPEC)
    assert counts["field"] == 1
    out.encode("utf-8")  # whole letters only


@pytest.mark.parametrize("line", [
    "$ echo ready-$((40+2))\r\nready-42\r\n", "a &amp; b, x=1+2, 50%25 off\n",
    "[\"a\", \"b\"] and \u0430b\n", "SGVsbG8gd29ybGQsIHRoaXMgaXMgYmFzZTY0IHRleHQ=\n$ ",
])
def test_a_line_that_ended_is_released_at_a_pause_however_encoded(
        masker: Masker, line: str) -> None:
    """A shell's output waits at a pause only for what could still grow: a `+`, an
    entity, a list or a base64 line printed and ended holds nothing back."""
    stream = masker.stream(SPEC)
    assert stream.feed(line) + stream.flush() == line
    assert stream.held <= len("$ ")


@pytest.mark.parametrize("line", [
    "kyc.submitted country=DE steuer_id=26=\n310541199 step=2\n",
    "kyc.submitted country=TR tckn=36281=\r\n529220 step=2\n",
])
def test_a_soft_break_in_key_value_lines_is_read_without_the_rest_as_escapes(
        masker: Masker, line: str) -> None:
    """Read as quoted-printable whole, `country=DE` is a byte no UTF-8 holds and `id=26`
    an `&`: the soft breaks are read in a view of their own too."""
    masked = masker.mask_text(line, SPEC)[0]
    assert "[REDACTED:" in masked
    assert not any(digits in masked for digits in ("310541199", "529220"))
    assert masked.startswith("kyc.submitted country=")


def test_a_unit_that_decodes_to_no_utf8_is_left_and_the_rest_still_read(
        masker: Masker) -> None:
    text = "x=%DE&card=" + quote(CARD, safe="") + " ok"
    masked = masker.mask_text(text, SPEC)[0]
    assert masked.startswith("x=%DE&card=") and "1111" not in masked


@pytest.mark.timeout(20)  # a view rebuilt per bad unit took minutes on this window
def test_binary_written_as_units_beside_a_value_leaves_the_value_read(
        masker: Masker) -> None:
    """A window of percent-encoded binary (20,000 units, most no UTF-8 where they land)
    is sorted in one pass, its valid characters kept: the card beside it is read, and
    the binary passes as it was."""
    junk = "".join(f"%{b:02X}" for b in bytes(range(128, 256)) * 160)
    text = f"blob={junk}&card={quote(CARD, safe='')}&name=Ren%C3%A9e"
    masked = masker.mask_text(text, SPEC)[0]
    assert masked.startswith(f"blob={junk}&card=%5BREDACTED%3ACREDIT_CARD%5D")
    assert masked.endswith("&name=Ren%C3%A9e")


_TRANSFORMED = MaskSpec(transforms=frozenset({"rot13", "reversed"}))


def _rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


@pytest.mark.parametrize(("text", "kind", "spelled"), [
    (_rot13(f"the key {AWS} works"), "aws_access_key_id", _rot13(AWS)),
    (_rot13("password: hunter2hunter2"), "generic_secret", _rot13("hunter2hunter2")),
    (f"mail {MAIL} now"[::-1], "email", MAIL[::-1]),
    (f"first line\nAWS key {AWS}"[::-1], "aws_access_key_id", AWS[::-1]),
], ids=["rot13-key", "rot13-field", "backwards-mail", "backwards-lines"])
def test_rot13_and_backwards_are_read_where_the_spec_asks(
        masker: Masker, text: str, kind: str, spelled: str) -> None:
    """No mark gives these away, so only a spec's `transforms` reads them (an MCP
    server's answers): masked in their own spelling. A backwards address still reads as
    one to the detectors, so it is masked either way."""
    masked, counts = masker.mask_text(text, _TRANSFORMED)
    assert counts[kind] == 1 and spelled not in masked
    assert (spelled in masker.mask_text(text, SPEC)[0]) == (kind != "email")


@pytest.mark.parametrize("text", [
    "tracking,status\n6168 3954 4884,ok\n",  # read backwards, a checksum passes
    "Meeting moved to 2025-01-30 at 14:00.",
    "ffa gur gbby naq 512346789 sbe gur yrt",  # rot13 makes a cue of a word
    json.dumps({"rows": [["Ada Lovelace", "ada.lovelace@example.com", "+1 415 555 0100"],
                         ["Katherine Johnson", "k.johnson@example.com", "078-05-1120"]]}),
])
def test_digits_a_transform_leaves_or_turns_are_read_only_as_they_are(
        masker: Masker, text: str) -> None:
    """And JSON read backwards, whose strings' ends and starts made an address of a
    name (`"k.johnson@…", "Katherine Johnson"` backwards): masked as it is, no more."""
    assert masker.mask_text(text, _TRANSFORMED) == masker.mask_text(text, SPEC)


def test_a_transform_no_one_wrote_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transforms: base58"):
        MaskSpec(transforms=frozenset({"base58"}))


_CUTS = st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60)
_WRAPPED = base64.b64encode(("y" * 200 + f" ssn {SSN} " + "z" * 100).encode()).decode()
_STREAMED = [
    "mail\n" + "\n".join(_WRAPPED[k:k + 76] for k in range(0, len(_WRAPPED), 76)) + "\nend",
    "before " * 80 + "card=" + quote_plus(CARD) + "&x=1 then " + _entities(SSN) + " after" * 90,
    "log " * 30 + base64.b64encode(("x" * 500 + f" ssn {SSN}").encode()).decode() + " end",
    "=?UTF-8?B?" + base64.b64encode(f"mail {MAIL}".encode()).decode() + "?= " * 3,
    "a" * 300 + _escapes(f"ssn {SSN}") + " " + quote(quote(MAIL, safe=""), safe=""),
    "log " * 40 + "country=DE steuer_id=26=\n310541199 step=2 " + "tail " * 40,
    "x " * 200 + "social insurance number: https://app.example.com/cb?id=130692544 end",
    "y " * 300 + "social insurance number: https://app.example.com/" + "p/" * 700
    + "cb?id=130692544 end" + " z" * 100,
    "y " * 100 + "u=" + quote(quote(quote(quote(CARD, safe=""), safe=""), safe=""), safe="")
    + " z" * 100,
]


@settings(max_examples=40, deadline=None)
@given(text=st.sampled_from(_STREAMED), cuts=_CUTS)
def test_a_stream_masks_encoded_values_as_the_whole_text_does(
        masker: Masker, text: str, cuts: list[int]) -> None:
    stream, out, pos = masker.stream(SPEC), [], 0
    for cut in cuts:
        out.append(stream.feed(text[pos:pos + cut]))
        pos += cut
    out += (stream.feed(text[pos:]), stream.finish())
    assert "".join(out) == masker.mask_text(text, SPEC)[0]
