"""A labelled set of values spelled as they leave real systems: encoded, escaped, wrapped.

Each sample is a sample of bench/travel.py's set (its secrets, personal data, national
ids, URLs and headers: values and contexts this module did not write) with its labelled
values, or all of its text, spelled in one `SHAPES` way; the label is then the span of
the value's spelling (or of the whole wrapped run), which a masker must cover. The hard
negatives of the travel set are spelled the same ways, unlabelled: nothing in them may
be found. One seed gives the same set, byte for byte; no code of tollgate is used.

Run from the repository root: `python -m bench.encoded` (the `bench` extra for the
Presidio columns) prints, per class and shape, the share of labels found by tollgate and
by Presidio's three configurations of bench/masking.py's travel table, the share of hard
negatives with any finding, and each column's speed.
"""

# The confusable letters are the point.
# ruff: noqa: RUF001

from __future__ import annotations

import argparse
import base64
import html
import json
import quopri
import random
from collections.abc import Callable, Sequence
from functools import partial
from urllib.parse import quote, quote_plus

from bench.labelled import Sample, Span
from bench.travel import travel_set

SEED = 8443
CLASSES = ("secret", "personal", "national_id", "url", "header")
_KEYS = ("data", "payload", "content", "value", "blob", "b64", "body", "encoded", "attachment")


def _percent2(_rnd: random.Random, value: str) -> str:
    return quote(quote(value, safe=""), safe="")


def _entities(rnd: random.Random, value: str) -> str:
    style = rnd.choice(("dec", "hex", "mixed"))
    out = []
    for c in value:
        if style == "mixed" and rnd.random() < 0.5:
            out.append(html.escape(c))
        elif style == "hex" or (style == "mixed" and rnd.random() < 0.5):
            out.append(f"&#x{ord(c):x};")
        else:
            out.append(f"&#{ord(c)};")
    return "".join(out)


def _hex(rnd: random.Random, value: str) -> str:
    out = value.encode().hex()
    return out.upper() if rnd.random() < 0.3 else out


def _json_u(rnd: random.Random, value: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if rnd.random() < 0.7 or not c.isalnum() else c
                   for c in value)


def _form(rnd: random.Random, value: str) -> Spelled:
    """As a form body carries it: a parameter among others, spaces as `+`."""
    return (f"{rnd.choice(('v', 'field1', 'input', 'q'))}=",
            quote_plus(value, safe=rnd.choice(("", "@", "-"))), "&submit=Send")


def _mime(rnd: random.Random, value: str) -> str:
    if rnd.random() < 0.5:
        return f"=?UTF-8?B?{base64.b64encode(value.encode()).decode()}?="
    q = "".join(c if c.isalnum() else f"={ord(c):02X}" if c != " " else "_"
                for c in value)
    return f"=?utf-8?Q?{q}?="


# Letters and digits that read as Latin ones: Cyrillic, Greek, full-width, other scripts'
# digits.
_CONFUSABLE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у",
               "A": "А", "B": "В", "E": "Е", "K": "К", "M": "М", "H": "Н", "O": "О",
               "P": "Р", "C": "С", "T": "Т", "X": "Х", "i": "і", "s": "ѕ", "j": "ј",
               **{str(d): chr(0xFF10 + d) for d in range(10)}}


def _confusables(rnd: random.Random, value: str) -> str:
    digits = rnd.choice((0xFF10, 0x660, 0x966, 0x1D7CE))
    return "".join(chr(digits + int(c)) if c.isdigit() and rnd.random() < 0.5
                   else _CONFUSABLE.get(c, c) if rnd.random() < 0.6 else c for c in value)


def _url(rnd: random.Random, value: str) -> Spelled:
    return (f"https://app.example.com/cb?{rnd.choice(('q', 'id', 'ref', 'next'))}=",
            quote(value, safe=""), "")


def _url_nested(rnd: random.Random, value: str) -> Spelled:
    inner = f"https://shop.example/pay?{rnd.choice(('card', 'acct', 'key'))}="
    return ("https://login.example.com/authorize?redirect_uri=" + quote(inner, safe=""),
            quote(quote(value, safe=""), safe=""), "")


def _quoted_printable(rnd: random.Random, value: str) -> str:
    """As a quoted-printable body writes it: `=` and what is not printable ASCII as
    `=XX`, and a soft line break (`=` and a line end) where a long line was cut."""
    coded = quopri.encodestring(value.encode(), quotetabs=True).decode().replace("=\n", "")
    if len(coded) < 2:
        return coded
    cut = rnd.randint(1, len(coded) - 1)
    while cut > 1 and "=" in coded[max(0, cut - 2):cut]:  # not inside an `=XX`
        cut -= 1
    return coded[:cut] + rnd.choice(("=\r\n", "=\n")) + coded[cut:]


# Value shapes: the labelled value is replaced, in its context, by its spelling (with
# what is written around it: a URL's start).
Spelled = str | tuple[str, str, str]
VALUE_SHAPES: dict[str, Callable[[random.Random, str], Spelled]] = {
    "percent twice": _percent2, "entities": _entities, "hex": _hex,
    "\\u escapes": _json_u, "form body": _form, "mime word": _mime,
    "confusables": _confusables, "url parameter": _url, "url in a url": _url_nested,
    "quoted-printable": _quoted_printable,
}


def _base64(rnd: random.Random, text: str) -> str:
    """The text in base64 or base64url, a third of them a JSON document holding it in
    base64 first."""
    raw = text.encode()
    if rnd.random() < 0.3:  # nested: base64 of a JSON document holding base64
        raw = json.dumps({rnd.choice(_KEYS): base64.b64encode(raw).decode()}).encode()
    coded = (base64.urlsafe_b64encode(raw).rstrip(b"=") if rnd.random() < 0.3
             else base64.b64encode(raw)).decode()
    return coded


# Text shapes: the whole sample's text is wrapped; the label is the whole wrapped run.
TEXT_SHAPES: dict[str, Callable[[random.Random, str], str]] = {"base64": _base64}
SHAPES = (*VALUE_SHAPES, *TEXT_SHAPES, "split across strings")


def _respelled(sample: Sample, spell: Callable[[str], Spelled]) -> Sample:
    """`sample` with each labelled value replaced by its spelling, the labels moved."""
    parts: list[str] = []
    spans: list[Span] = []
    pos = length = 0
    for span in sorted(sample.spans, key=lambda s: s.start):
        if span.start < pos:
            continue
        parts.append(sample.text[pos:span.start])
        length += span.start - pos
        spelled = spell(sample.text[span.start:span.end])
        before, value, after = ("", spelled, "") if isinstance(spelled, str) else spelled
        spans.append(Span(length + len(before), length + len(before) + len(value), span.kind))
        parts.append(before + value + after)
        length += len(before) + len(value) + len(after)
        pos = span.end
    parts.append(sample.text[pos:])
    return Sample("".join(parts), tuple(spans), sample.carrier, sample.origin)


def _wrapped(rnd: random.Random, sample: Sample, wrap: Callable[[random.Random, str], str]
             ) -> Sample:
    """The whole text wrapped, in a JSON field or a mail header; labelled whole if it was."""
    run = wrap(rnd, sample.text)
    head = rnd.choice((f'{{"{rnd.choice(_KEYS)}": "', "Content: ", "log: payload="))
    tail = '"}' if head.startswith("{") else ""
    spans = (Span(len(head), len(head) + len(run), sample.spans[0].kind),) if sample.spans else ()
    return Sample(head + run + tail, spans, sample.carrier, sample.origin)


def _split(rnd: random.Random, sample: Sample) -> Sample:
    """Each labelled value cut in two, as two JSON strings of a list or two CSV cells."""
    def spell(value: str) -> str:
        cut = rnd.randint(1, max(1, len(value) - 1))
        if rnd.random() < 0.5:
            return json.dumps([value[:cut], value[cut:]])
        return f"{value[:cut]},{value[cut:]}"

    return _respelled(sample, spell)


def encoded_set(seed: int = SEED) -> dict[str, dict[str, list[Sample]]]:
    """Class -> shape -> samples; class "negative" holds the hard negatives, spelled."""
    rnd = random.Random(seed)
    source = travel_set(classes=(*CLASSES, "negative"))
    out: dict[str, dict[str, list[Sample]]] = {}
    for cls, samples in source.items():
        shaped: dict[str, list[Sample]] = out.setdefault(cls, {})
        picked = rnd.sample(samples, min(len(samples), 120))
        for shape in SHAPES:
            made: list[Sample] = []
            for sample in picked:
                if shape in VALUE_SHAPES:
                    spell = VALUE_SHAPES[shape]
                    if cls == "negative":  # a negative has no label: spell a word of it
                        words = sample.text.split(" ")
                        k = rnd.randrange(len(words))
                        spelled = spell(rnd, words[k])
                        words[k] = spelled if isinstance(spelled, str) else "".join(spelled)
                        made.append(Sample(" ".join(words), (), sample.carrier,
                                           sample.origin))
                    else:
                        made.append(_respelled(sample, partial(spell, rnd)))
                elif shape in TEXT_SHAPES:
                    made.append(_wrapped(rnd, sample, TEXT_SHAPES[shape]))
                elif cls != "negative":
                    made.append(_split(rnd, sample))
            shaped[shape] = made
    return out


def main(argv: Sequence[str] | None = None) -> None:
    from bench.masking import TRAVEL_COLUMNS
    from bench.scoring import Score, score

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tollgate-only", action="store_true",
                        help="only tollgate's column (no Presidio: no bench extra needed)")
    args = parser.parse_args(argv)
    columns = [c for c in TRAVEL_COLUMNS if c.name != "tollgate+model"
               and (not args.tollgate_only or c.name == "tollgate")]
    data = encoded_set()
    finders = [(c.name, c.make()) for c in columns]
    print(f"{'labels found':32}" + "".join(f"{name:>20}" for name, _ in finders))
    seconds = dict.fromkeys((n for n, _ in finders), 0.0)
    size = dict.fromkeys((n for n, _ in finders), 0)
    for cls, shapes in data.items():
        print(cls if cls != "negative" else "negative: share with any finding")
        for shape, samples in shapes.items():
            if not samples:
                continue
            cells = []
            for name, finder in finders:
                got: Score = score(samples, finder, any_kind=True)
                seconds[name] += got.seconds
                size[name] += got.size
                cells.append(got.false_positive_rate if cls == "negative"
                             else Score.total(got.recall.values()).rate)
            print(f"  {shape:30}" + "".join(f"{v:>20.3f}" for v in cells)
                  + f"{len(samples):>8}")
    print(f"{'speed (MB/s)':32}" + "".join(
        f"{size[n] / seconds[n] / 1e6:>20.3f}" for n, _ in finders))


if __name__ == "__main__":
    main()
