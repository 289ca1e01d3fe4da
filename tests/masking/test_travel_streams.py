"""Streams mask where data travels exactly as whole bodies do: the travel set's samples
(bench/travel.py: header dumps, URLs, config files, ids, people, CSV), cut anywhere into
chunks (a chunked body, an SSH session's writes) or into parts (the events of an event
stream, WebSocket frames), come out as `mask_text` of the whole, counts included."""

from __future__ import annotations

from functools import cache
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.travel import CLASSES, travel_set
from extproc.masking import Masker, MaskSpec
from extproc.masking.stream import PartStream
from tests.masking.conftest import KEY

MASKER = Masker(KEY)
SPEC = MaskSpec()


@cache
def texts() -> dict[str, list[str]]:
    """Each class's samples, joined into texts of ~4 KB: long enough that a stream
    releases some of a text before the rest arrives."""
    out: dict[str, list[str]] = {}
    for cls, samples in travel_set().items():
        joined, current = [], ""
        for sample in samples:
            current += sample.text + "\n\n"
            if len(current) > 4000:
                joined.append(current)
                current = ""
        out[cls] = [*joined, current] if current else joined
    return out


def streamed(pieces: list[str], parts: bool) -> tuple[str, dict[str, int]]:
    if parts:
        stream = PartStream(MASKER, SPEC)
        out = [p for piece in pieces for p in stream.feed_part(piece)]
        return "".join(out + stream.finish_parts()), dict(stream.counts)
    chunked = MASKER.stream(SPEC)
    return "".join([chunked.feed(p) for p in pieces] + [chunked.finish()]), dict(chunked.counts)


def cut(text: str, at: list[int]) -> list[str]:
    bounds = [0, *sorted(set(at)), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


@pytest.mark.slow
@pytest.mark.parametrize("cls", CLASSES)
def test_a_short_text_of_each_class_cut_in_two_anywhere(cls: str) -> None:
    text = texts()[cls][0][:700]
    whole, counts = MASKER.mask_text(text, SPEC)
    for at in range(len(text) + 1):
        assert streamed(cut(text, [at]), parts=False) == (whole, dict(counts)), (cls, at)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_class_cut_into_chunks_or_parts_masks_as_whole(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(CLASSES))
    text = data.draw(st.sampled_from(texts()[cls]))
    at = data.draw(st.lists(st.integers(0, len(text)), max_size=40))
    parts = data.draw(st.booleans())
    whole, counts = MASKER.mask_text(text, SPEC)
    assert streamed(cut(text, at), parts) == (whole, dict(counts))
