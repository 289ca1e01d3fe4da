"""The one Hyperscan pass (prefilter.py), and the finders that read it instead of looking
again: each gives what a plain reading of its rule gives (a reference written here the
simple way, with `re` and `bytes.find`), on texts built to hold near misses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs import multipattern
from extproc.codecs.multipattern import Pass
from extproc.masking import checks, keys, masker, phones
from extproc.masking.detectors import (
    _IBAN,
    _IBAN_COUNTRIES,
    _IBAN_LOWER,
    _PEM,
    BASE64,
    Text,
    _iban,
    _pem_blocks,
    iban,
)
from extproc.masking.key_rules import assignments as _assignments
from extproc.masking.masker import Masker

# The one pass's database compiles on first use (0.2-0.4 s on a busy machine): here, not
# inside the deadline of whichever property test runs first.
Text(b"warm")


def test_every_occurrence_of_a_pattern_is_reported_by_its_end() -> None:
    p = Pass()
    word = p.literal(b"ab", caseless=True)
    first = p.literal(b"ab", first=True)
    shaped = p.literal(b"00", shape=True)
    hits = p.scan(b"ab AB aab", b"aa AA aaa")
    assert hits[word] == [2, 5, 9]  # any case, overlapping none here
    assert hits[first] == [2]  # the first only
    assert shaped not in hits  # a shape without a digit is not scanned
    assert p.scan(b"12x", b"00x")[shaped] == [2]


def test_a_pattern_added_after_the_first_scan_is_refused() -> None:
    p = Pass()
    p.literal(b"x")
    p.scan(b"x", b"x")
    with pytest.raises(RuntimeError):
        p.literal(b"y")


def test_a_shape_pattern_without_a_digit_is_refused() -> None:
    with pytest.raises(ValueError, match="digit"):
        Pass().literal(b"AA", shape=True)


@given(st.binary(min_size=1, max_size=4), st.binary(max_size=40))
def test_a_literal_matches_itself_only_whatever_its_bytes(literal: bytes, text: bytes) -> None:
    p = Pass()
    found = p.literal(literal)
    expected, at = [], text.find(literal)
    while at != -1:
        expected.append(at + len(literal))
        at = text.find(literal, at + 1)
    assert p.scan(text, b"").get(found, []) == expected


@given(st.text("0123456789", max_size=25))
def test_luhn_is_the_textbook_checksum(digits: str) -> None:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    assert checks.luhn(digits) is (total % 10 == 0)


# Near misses: country codes, check digits, letters and digits, separators.
_IBANISH = st.lists(st.sampled_from(
    ["GB", "gb", "DE", "de", "XX", "82", "89", "WEST", "west", "1234", "5698", "76", "AA",
     " ", "  ", "-", "\x00", "a", "0", "3704", "0044", "0532", "0130", "00"]), max_size=30
).map("".join)


def _iban_reference(t: Text) -> list[tuple[int, int]]:
    """Upper case by `re.finditer`; lower case from `bytes.find`, past each finding."""
    found = [span for m in _IBAN.finditer(t.shape) if (span := _iban(t, *m.span()))]
    pos = t.shape.find(b"aa00")
    while pos != -1:
        end = pos + 1
        if (t.raw[pos : pos + 2] in _IBAN_COUNTRIES and (m := _IBAN_LOWER.match(t.shape, pos))
                and (span := _iban(t, *m.span()))):
            found.append(span)
            end = span[1]
        pos = t.shape.find(b"aa00", end)
    return found


@settings(max_examples=300)
@given(_IBANISH)
def test_ibans_from_the_pass_are_those_a_search_finds(text: str) -> None:
    t = Text(text.encode())
    assert list(iban.find(t)) == _iban_reference(t)


def test_an_iban_in_either_case_is_found_from_the_pass() -> None:
    t = Text(b"to GB82WEST12345698765432 or gb82 west 1234 5698 7654 32.")
    assert [t.raw[s:e] for s, e in iban.find(t)] == [b"GB82WEST12345698765432",
                                                     b"gb82 west 1234 5698 7654 32"]


# Openings, ends and bodies of key blocks, near misses of each, and what stops a body.
_PEMISH = st.lists(st.sampled_from(
    ["-----BEGIN ", "RSA ", "PRIVATE KEY", "-----", "-----END ", "-----BEGIN PRIVATE KEY-----",
     "-----END PRIVATE KEY-----", "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----",
     "---- END SSH2 ENCRYPTED PRIVATE KEY ----", "PuTTY-User-Key-File-", "2: ",
     "Private-MAC: ", "ab", "MIIE", "\n", "\\n", " ", "-", "\x00", "\x01", "é", "begin "]),
    max_size=24
).map("".join)


@pytest.mark.slow
@settings(max_examples=400)
@given(_PEMISH)
def test_key_blocks_from_the_pass_are_those_a_search_finds(text: str) -> None:
    t = Text(text.encode())
    assert [m.span() for m in _pem_blocks(t)] == [m.span() for m in _PEM.finditer(t.raw)]


_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_AWSISH = st.lists(st.sampled_from(
    ["aws", "AWS_", "secret_access_key", "AKIAIOSFODNN7EXAMPLE", _SECRET, _SECRET + "x",
     "=", " ", "\x00", "\x01", "x" * 50, "y" * 150, "word ", "/"]), max_size=14
).map("".join)


def _aws_reference(t: Text) -> list[tuple[int, int]]:
    """From each context: a run of exactly 40 base64 bytes starting within reach, in the
    same JSON value, not followed by `=`, that looks generated."""
    raw, found = t.raw, []
    view = raw.translate(keys._BASE64_CLASS)
    for ctx in sorted(set(keys._aws_contexts(t))):
        stop = raw.find(b"\x00", ctx)
        reach = min(len(raw) if stop == -1 else stop, ctx + keys._AWS_REACH + 40)
        s = view.find(keys._FORTY, ctx, reach)
        while s != -1 and s <= ctx + keys._AWS_REACH:
            e = view.find(b" ", s)
            e = len(view) if e == -1 else e
            if (e - s == 40 and (s, e) not in found and not t.at(BASE64, s - 1)
                    and raw[e : e + 1] != b"=" and keys._random_looking(t, s, e)):
                found.append((s, e))
            s = view.find(keys._FORTY, e, reach)
    return sorted(found)


@settings(max_examples=300)
@given(_AWSISH)
def test_aws_secrets_near_a_context_are_those_each_context_finds(text: str) -> None:
    t = Text(text.encode())
    assert list(keys._aws_secret_near_context(t)) == _aws_reference(t)


_ASSIGNED = st.lists(st.sampled_from(
    ["a", "KEY", "_", ".", "-", "=", "==", "v", "&", " ", ";", "x" * 60, "password"]),
    max_size=20).map("".join)
_KEY_REVERSED = re.compile(rb"[A-Za-z0-9_.\-]{1,65}")
_VALUE = re.compile(rb"=([^&\s\"';,]{1,512})")


@given(_ASSIGNED)
def test_assignments_read_their_key_back_from_the_equals_sign(text: str) -> None:
    raw, expected, done = text.encode(), [], 0
    for eq in (i for i, c in enumerate(raw) if c == 0x3D):
        key = _KEY_REVERSED.match(raw[max(0, eq - 65) : eq][::-1])
        value = _VALUE.match(raw, eq)
        if eq >= done and key and key.end() <= 64 and eq - key.end() >= done and value:
            expected.append((raw[eq - key.end() : eq], *value.span(1)))
            done = value.end()
    assert list(_assignments(raw)) == expected


_NUMBERISH = st.lists(st.sampled_from(
    ["0", "1", "5", "9", " ", "-", ".", "/", "(", ")", "+", "x", "phone ", "\x01"]),
    max_size=30).map("".join)
_BACK_REVERSED = re.compile(rb"[0-9 ./()+\-]*")


@given(_NUMBERISH)
def test_a_phone_candidate_starts_where_reading_back_stops(text: str) -> None:
    t = Text(text.encode())
    for end in range(1, len(t.raw) + 1):
        back = _BACK_REVERSED.match(t.raw[max(0, end - 64) : end][::-1])
        s = end - (back.end() if back else 0)
        while s < end and t.raw[s] in b" ./)+-":
            s += 1
        starts = (s, s + 1) if t.raw[s : s + 1] == b"(" else (s,)
        expected = next((x for x in starts if phones._CANDIDATE.fullmatch(t.raw, x, end)), None)
        assert phones._start(t, end) == expected


@given(_NUMBERISH)
def test_north_american_numbers_from_the_pass_are_those_a_search_finds(text: str) -> None:
    t = Text(text.encode())
    expected = []
    for shape in (re.compile(rb"000 000 0000"), re.compile(rb"000\.000\.0000")):
        for m in shape.finditer(t.shape):
            for r in phones._PHONE_NANP_RAW.finditer(t.raw, max(0, m.start() - 4), m.end() + 16):
                if r.start() <= m.start() < r.end() and (span := phones._phone(t, *r.span())):
                    expected.append(span)
    assert list(phones._phone_nanp(t)) == expected


def test_a_run_beyond_one_context_is_found_near_the_next() -> None:
    far = "aws " + "x " * 100 + "aws " + _SECRET  # 200 bytes past the first, 1 past the second
    t = Text(far.encode())
    assert [t.raw[s:e].decode() for s, e in keys._aws_secret_near_context(t)] == [_SECRET]
    alone = Text(("aws " + "x " * 100 + _SECRET).encode())
    assert list(keys._aws_secret_near_context(alone)) == []


@pytest.mark.parametrize(("gap", "found"), [(1, True), (160, True), (161, False), (168, False)])
def test_a_run_counts_up_to_its_reach_after_a_context(gap: int, found: bool) -> None:
    t = Text(("aws" + "." * gap + _SECRET).encode())
    assert list(keys._aws_secret_near_context(t)) == _aws_reference(t)
    assert bool(_aws_reference(t)) is found


def test_a_pass_compiled_ahead_scans_without_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """`compile` is what `Masker.warm` runs at a process's start: the first scan after it
    builds nothing (a strict record's commit deadline does not pay for the compile)."""
    p = Pass()
    word = p.literal(b"key")
    p.compile()

    def compiled_again(_patterns: object) -> None:
        raise AssertionError("compiled at the first scan")

    monkeypatch.setattr(multipattern, "_database", compiled_again)
    assert p.scan(b"a key", b"a aaa")[word] == [5]
    with pytest.raises(RuntimeError, match="never be found"):
        p.literal(b"late")


def test_warming_a_masker_compiles_the_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = Pass()
    fresh.literal(b"key")
    monkeypatch.setattr(masker, "PASS", fresh)
    Masker(b"k" * 16).warm()
    monkeypatch.setattr(multipattern, "_database", None)  # a compile now would fail
    assert fresh.scan(b"key", b"aaa")


# -- the compiled databases kept in the user's cache ----------------------------------


def test_a_database_compiled_once_is_loaded_from_the_cache_by_the_next_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_CACHE", str(tmp_path))
    first = Pass()
    word = first.literal(b"secret", caseless=True)
    first.compile()
    kept = list((tmp_path / multipattern.CACHE).iterdir())
    assert len(kept) == 1
    again = Pass()
    assert again.literal(b"secret", caseless=True) == word
    compiled: list[object] = []
    monkeypatch.setattr(multipattern.hyperscan, "Database",
                        lambda **kw: compiled.append(kw))  # any compile would be seen
    assert again.scan(b"a SECRET here", b"")[word] == [8]
    assert compiled == []


def test_another_pattern_is_another_entry_and_a_damaged_one_is_compiled_anew(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_CACHE", str(tmp_path))
    one = Pass()
    one.literal(b"secret")
    one.compile()
    other = Pass()
    found = other.literal(b"token")
    other.compile()
    entries = sorted((tmp_path / multipattern.CACHE).iterdir())
    assert len(entries) == 2
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:100])  # cut short: Hyperscan refuses it
    damaged = Pass()
    damaged.literal(b"token")
    assert damaged.scan(b"a token", b"")[found] == [7]


@pytest.mark.slow
def test_every_process_registers_the_same_patterns_in_the_same_order() -> None:
    """The cache's key is the patterns with their ids: a registration that followed a set's
    order (a string hash, random per process) would miss it in every new process."""
    dump = ("import extproc.masking\nfrom extproc.masking.prefilter import PASS\n"
            "print(repr(PASS._patterns))")
    seen = {subprocess.run([sys.executable, "-c", dump], capture_output=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, timeout=60).stdout
            for seed in ("1", "2")}
    assert len(seen) == 1
