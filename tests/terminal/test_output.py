"""A host's output masked as it streams (extproc/terminal/output.py): byte-exact where nothing
matches, whatever the split; a secret cut between reads masked whole."""

from __future__ import annotations

import os

import pytest

from extproc.masking.policy_mask import new_masker, spec_of
from extproc.terminal.output import MaskedOutput

MASKER = new_masker(None)
ALL = spec_of([{"detectors": ["all"]}])
KEY = b"AKIAIOSFODNN7EXAMPLE"


def through(data: bytes, cut: int) -> tuple[bytes, MaskedOutput]:
    out = MaskedOutput(MASKER, ALL)
    shown = b""
    for i in range(0, len(data), cut):
        shown += out.feed(data[i:i + cut])
    return shown + out.finish(), out


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 4096])
def test_binary_and_non_utf8_output_passes_unchanged(cut: int) -> None:
    data = bytes(range(256)) * 4 + "héllo wörld ✓\n".encode() + b"\xff\xfe\xc3"
    shown, out = through(data, cut)
    assert shown == data
    assert not out.counts


@pytest.mark.parametrize("cut", [1, 5, 13])
def test_a_key_cut_between_reads_is_masked_whole(cut: int) -> None:
    data = b"export AWS_ACCESS_KEY_ID=" + KEY + b"\nok\n"
    shown, out = through(data, cut)
    assert KEY not in shown
    assert shown.endswith(b"\nok\n")
    assert sum(out.counts.values()) == 1


def test_flush_shows_what_was_held_and_goes_on_masking() -> None:
    out = MaskedOutput(MASKER, ALL)
    assert out.feed(b"user@host:~$ ") == b""  # held: it could still grow into a secret
    assert out.flush() == b"user@host:~$ "
    assert out.feed(b"key " + KEY[:6]) + out.flush() == b"key "  # a key's start waits
    shown = out.feed(KEY[6:] + b"\n") + out.flush() + out.finish()
    assert KEY not in shown and shown.endswith(b"]\n")
    assert sum(out.counts.values()) == 1


def test_flush_keeps_a_character_cut_by_the_pause_for_its_rest() -> None:
    out = MaskedOutput(MASKER, ALL)
    check = "✓".encode()
    assert out.feed(b"done " + check[:1]) + out.flush() == b"done "
    assert out.feed(check[1:] + b"\n") + out.flush() == check + b"\n"


def test_no_mask_passes_bytes_as_they_come() -> None:
    out = MaskedOutput(MASKER, None)
    data = os.urandom(1000) + KEY
    assert out.feed(data) == data
    assert out.finish() == b""
