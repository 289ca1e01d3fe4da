"""Event streams whose data is plain text (a stream of tokens, Replicate's `output`
events): the events of one name are one text, masked across them by a PartStream, and
each event goes out whole, in the order they came, byte for byte where nothing is found.

PartStream (stream.py) is checked first on its own: its parts joined are `mask_text` of
the whole, wherever the parts are cut.
"""

from __future__ import annotations

import json
import random

import pytest

from extproc.codecs.sse import EventSplitter, event_of, fields
from extproc.masking import Masker, MaskSpec
from extproc.masking.body import ByteStream, EventMasking
from extproc.masking.stream import PartStream

SPEC = MaskSpec()
SECRET = "card 4111 1111 1111 1111 and mail jo.doe@example.com ok"
PEM = ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5\n"
       "-----END EC PRIVATE KEY-----")
LONG = (f"Hello, card {SECRET} then a key\n{PEM}\nSSN 512-34-6789, naïve café 😀 "
        + "nothing more to see. " * 30)
CLEAN = "Grüße — naïve café 😀, nothing here but words and 12 apples. " * 12


def parts_out(masker: Masker, parts: list[str]) -> list[str]:
    stream = PartStream(masker, SPEC)
    out = [p for part in parts for p in stream.feed_part(part)]
    return out + stream.finish_parts()


def cut_at(text: str, cuts: list[int]) -> list[str]:
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


# -- PartStream: the mechanism -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("text", [LONG, CLEAN], ids=["secrets", "clean"])
def test_parts_cut_in_two_anywhere_join_as_the_whole(masker: Masker, text: str) -> None:
    expected, _ = masker.mask_text(text, SPEC)
    for cut in range(len(text) + 1):
        out = parts_out(masker, cut_at(text, [cut]))
        assert len(out) == 2 and "".join(out) == expected, cut


def test_parts_of_one_character_and_random_cuts(masker: Masker) -> None:
    expected, counts = masker.mask_text(LONG, SPEC)
    stream = PartStream(masker, SPEC)
    out = [p for c in LONG for p in stream.feed_part(c)] + stream.finish_parts()
    assert len(out) == len(LONG) and "".join(out) == expected and stream.counts == counts
    rnd = random.Random(7)
    for _ in range(200):
        cuts = sorted(rnd.sample(range(len(LONG) + 1), rnd.choice([2, 5, 30])))
        out = parts_out(masker, cut_at(LONG, cuts))
        assert len(out) == len(cuts) + 1 and "".join(out) == expected, cuts


def test_a_finding_cut_between_parts_goes_into_the_part_it_starts_in(masker: Masker) -> None:
    out = parts_out(masker, ["pay 4111 11", "11 1111", " 1111 now", "!"])
    assert out == ["pay [REDACTED:CREDIT_CARD]", "", " now", "!"]


def test_parts_where_nothing_is_found_come_back_as_they_went(masker: Masker) -> None:
    parts = cut_at(CLEAN, list(range(0, len(CLEAN), 7)))
    assert parts_out(masker, parts) == parts


def test_a_part_is_released_once_the_hold_follows_it(masker: Masker) -> None:
    """Latency: a part comes back once a hold (plus a re-scan step) has arrived after it,
    whatever the size of the parts."""
    for size in (1, 5, 40, 900):
        stream = PartStream(masker, SPEC)
        fed, released = [], 0
        for i in range(0, 4000, size):
            part = ("lorem ipsum dolor sit amet, " * 200)[i:i + size]
            fed.append(len(part))
            released += len(stream.feed_part(part))
            behind = sum(fed[released:]) - fed[-1]  # held, before the last part
            assert behind <= stream.hold + 64, (size, i)
        assert released + len(stream.finish_parts()) == len(fed)


# -- events whose data is plain text ----------------------------------------------------

def plain(pieces: list[str], name: str | None = None) -> bytes:
    head = [("event", name)] if name is not None else []
    return b"".join(event_of([*head, ("data", p)]) for p in pieces)


def masked(masker: Masker, data: bytes, cuts: tuple[int, ...] = ()) -> bytes:
    stream = ByteStream(masker, SPEC, events=True)
    out = [stream.feed(data[a:b]) for a, b in zip((0, *cuts), (*cuts, len(data)), strict=True)]
    return b"".join(out) + stream.finish()


def events(data: bytes) -> list[list[tuple[str, str]]]:
    splitter = EventSplitter()
    return [fields(raw) for raw in splitter.feed(data) + splitter.finish()]


def text_of(data: bytes, name: str = "") -> str:
    """What a client joins of the data of the events named `name` ("": unnamed)."""
    out = []
    for lines in events(data):
        if next((v for f, v in reversed(lines) if f == "event"), "") == name:
            out += ["\n".join(v for f, v in lines if f == "data")]
    return "".join(out)


def test_plain_tokens_one_character_an_event(masker: Masker) -> None:
    data = plain(list(SECRET))
    out = masked(masker, data)
    assert text_of(out) == masker.mask_text(SECRET, SPEC)[0]
    assert len(events(out)) == len(SECRET)  # each event goes out, what it carried or less


@pytest.mark.parametrize("text", [f"key\n{PEM}\nend", f"note:\n{SECRET}\n\nbye"],
                         ids=["pem", "secret"])
def test_multi_line_data_cut_between_two_events_anywhere(masker: Masker, text: str) -> None:
    expected, counts = masker.mask_text(text, SPEC)
    assert counts
    for cut in range(1, len(text)):
        out = masked(masker, plain([text[:cut], text[cut:]]))
        assert text_of(out) == expected, cut


def test_numbers_among_plain_tokens_are_text(masker: Masker) -> None:
    """A token that happens to be JSON (`4111`, `true`) is text like its neighbours."""
    out = masked(masker, plain(["card", " 4111", " 1111", " 1111", " 1111", " true"]))
    assert text_of(out) == "card [REDACTED:CREDIT_CARD] true"


def test_named_events_each_name_its_own_text(masker: Masker) -> None:
    """Replicate's shape: `output` text, `logs` between, a JSON `done`; a secret cut over
    `output` events is masked, `logs` are a text of their own, and every event keeps its
    place (`id` order)."""
    cut = SECRET.index("1111") + 2
    stream = [("output", SECRET[:cut]), ("logs", "step 4111 11"), ("output", SECRET[cut:]),
              ("logs", "11 1111 1111 done")]
    data = b"".join(event_of([("event", n), ("id", str(i)), ("data", p)])
                    for i, (n, p) in enumerate(stream))
    data += b"event: done\nid: 9\ndata: {}\n\n"
    out = masked(masker, data)
    assert text_of(out, "output") == masker.mask_text(SECRET, SPEC)[0]
    assert text_of(out, "logs") == masker.mask_text("step 4111 1111 1111 1111 done", SPEC)[0]
    ids = [v for lines in events(out) for f, v in lines if f == "id"]
    assert ids == ["0", "1", "2", "3", "9"]


def test_text_of_one_name_is_not_joined_with_another(masker: Masker) -> None:
    data = plain(["card 4111 1111"], "a") + plain([" 1111 1111 ok"], "b")
    assert masked(masker, data) == data


def test_mixed_plain_and_json_events_keep_their_order(masker: Masker) -> None:
    """Plain text ends where the stream turns to JSON: what it holds goes out first."""
    cut = SECRET.index("jo.doe") + 3
    data = (plain([SECRET[:cut], SECRET[cut:]])
            + b'data: {"usage": {"tokens": 12}}\n\n'
            + plain(["more ", "text"]) + b"data: [1, 2]\n\n" + plain(["last"]))
    out = events(masked(masker, data))
    assert [lines[-1][1][:3] for lines in out] == [
        "car", " ok", '{"u', "mor", "tex", "[1,", "las"]
    assert text_of(event_of(out[0]) + event_of(out[1])) == masker.mask_text(SECRET, SPEC)[0]


def test_nothing_to_mask_passes_byte_for_byte(masker: Masker) -> None:
    """Plain events (LF, CRLF and CR line ends, names, ids, multi-line data), comments,
    JSON records and `[DONE]`: unchanged, whole or cut at any byte."""
    data = (b": hello\n\n" + "data: naïve\ndata: café 😀\n\n".encode()
            + b"event: output\r\nid: 1\r\ndata: some \r\n\r\n"
            + b"event: output\rid: 2\rdata: words\r\r"
            + b'retry: 3000\ndata: {"name": "Ada", "n": 3}\n\n'
            + b"data:no space\ndata\n\ndata: 12\n\n" + b"data: [DONE]\n\n")
    assert masked(masker, data) == data
    for cut in range(1, len(data)):
        assert masked(masker, data, (cut,)) == data, cut


def test_a_masked_stream_cut_at_any_byte_is_masked_the_same(masker: Masker) -> None:
    data = plain([SECRET[:9], SECRET[9:30], SECRET[30:]], "output").replace(b"\n", b"\r\n")
    whole = masked(masker, data)
    assert text_of(whole, "output") == masker.mask_text(SECRET, SPEC)[0]
    for cut in range(1, len(data)):
        assert masked(masker, data, (cut,)) == whole, cut


def test_a_comment_passes_at_once_while_text_is_held(masker: Masker) -> None:
    stream = ByteStream(masker, SPEC, events=True)
    assert stream.feed(b"data: card 4111 11\n\n") == b""
    assert stream.feed(b": keep-alive\n\n") == b": keep-alive\n\n"
    out = stream.feed(b"data: 11 1111 1111 ok\n\n") + stream.finish()
    assert text_of(out) == "card [REDACTED:CREDIT_CARD] ok"


def test_done_releases_the_text_held_before_it(masker: Masker) -> None:
    stream = ByteStream(masker, SPEC, events=True)
    out = stream.feed(plain(["card 4111 1111 ", "1111 1111 ok"]) + b"data: [DONE]\n\n")
    assert out.endswith(b"\n\ndata: [DONE]\n\n")
    assert text_of(out) == "card [REDACTED:CREDIT_CARD] ok[DONE]"
    assert stream.finish() == b""


def test_the_other_lines_of_a_text_event_are_masked(masker: Masker) -> None:
    data = b"event: output\nid: jo.doe@example.com\n: card 4111 1111 1111 1111\ndata: hi\n\n"
    out = masked(masker, data)
    assert out == (b"event: output\nid: [REDACTED:EMAIL_ADDRESS]\n: card "
                   b"[REDACTED:CREDIT_CARD]\ndata: hi\n\n")


def test_an_event_stream_of_json_strings_is_text_too(masker: Masker) -> None:
    """`data: "..."` is JSON, but no object: its text (quotes and all) streams as text,
    each event whole."""
    pieces = [json.dumps(p) for p in ("hello ", "world")]
    assert masked(masker, plain(pieces)) == plain(pieces)


def test_events_held_go_out_before_an_over_long_event(masker: Masker) -> None:
    """An event over the size an event is held whole streams through as text: the text
    events held before it go out first."""
    big = b"data: " + b"x" * (1 << 20) + b" ok\n\n"
    out = masked(masker, plain(["card 4111 1111 ", "1111 1111 ok"]) + big, (100, 4000))
    head, _, rest = out.partition(b"data: xxx")
    assert text_of(head) == "card [REDACTED:CREDIT_CARD] ok"
    assert rest.endswith(b"x ok\n\n")


def test_event_masking_counts_what_text_events_masked(masker: Masker) -> None:
    masking = EventMasking(masker, SPEC)
    out = b"".join(masking.event(raw, None) for raw in (b"data: card 4111 1111\n\n",
                                                         b"data:  1111 1111 ok\n\n"))
    assert out == b""  # held: what follows could still change them
    assert masking.finish() == b"data: card [REDACTED:CREDIT_CARD]\n\ndata:  ok\n\n"
    assert masking.counts == {"credit_card": 1}
