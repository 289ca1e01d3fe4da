"""Cloud and SaaS credentials: AWS key pairs, the tokens vendors mark with a prefix or
a shape (gitleaks' rule set, vendor_rules.py), and secrets known by their name only
(generic_secrets.py).

The detectors tollgate had before it read gitleaks (AWS, GitHub, GitLab, Slack, Stripe,
OpenAI) keep their names, which policies use, and their hand-written patterns; each
also runs its vendor's gitleaks rules (every GitLab and Slack token kind, Slack
webhooks...). `vendor_key` runs all the other vendors' rules. Every literal these
detectors need (rule keywords, AWS prefixes, key-like names) is looked for by the one
Hyperscan pass per text (prefilter.py, read by literals.py), shared by their gates and
finders.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator

from extproc.masking import generic_secrets, vendor_rules
from extproc.masking.detectors import (
    BASE64,
    NOT_DIGIT,
    TOKEN,
    Detector,
    Found,
    Text,
    both,
    bounded,
    matches,
)
from extproc.masking.literals import Literals

# --- cloud and SaaS credentials -----------------------------------------------------------


def _token(t: Text, s: int, e: int) -> tuple[int, int] | None:
    return (s, e) if bounded(t, s, e, TOKEN) else None


def _random_looking(t: Text, s: int, e: int) -> tuple[int, int] | None:
    """A generated key mixes cases and digits; prose and identifiers rarely do all three."""
    body = t.raw[s:e]
    if body.lower() == body or body.upper() == body or len(body.translate(None, NOT_DIGIT)) == 0:
        return None
    return _token(t, s, e)


def _prefixed(*patterns: bytes, check: Callable[[Text, int, int], tuple[int, int] | None] = _token
              ) -> Callable[[Text], Found]:
    return both(*(matches(re.compile(p), check) for p in patterns))


# The longest finding of each detector (the bound its rules' matches are searched in).
_MAX_LEN = {"github_token": 268, "gitlab_token": 320, "slack_token": 257, "stripe_key": 257,
            "openai_key": 266, "vendor_key": 2200}
RULES = vendor_rules.load(_MAX_LEN)

# Every IAM unique-id prefix: access keys (AKIA, and ASIA temporary), users, groups,
# roles, instance profiles, managed policies and their versions, public keys, bearer
# tokens, context-specific credentials; and A3T, an early key id prefix.
_AWS_PREFIXES = (b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"AIPA", b"ANPA", b"ANVA",
                 b"APKA", b"ABIA", b"ACCA", b"A3T")
_AWS_WORDS = (b"aws", b"secretaccesskey", b"secret_access_key")

# What each hand-written finder's matches start with (its gate).
_HAND_WORDS = {
    "github_token": (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
    "gitlab_token": (b"glpat-",),
    "slack_token": (b"xoxa-", b"xoxb-", b"xoxp-", b"xoxo-", b"xoxs-", b"xoxr-"),
    "stripe_key": (b"sk_live_", b"sk_test_", b"rk_live_", b"rk_test_"),
    "openai_key": (b"sk-",),
}

LITERALS = Literals("keys", (*RULES.keywords, *_AWS_PREFIXES, *_AWS_WORDS, *generic_secrets.NAMES,
                             *generic_secrets.CUES,
                             *(w for words in _HAND_WORDS.values() for w in words)))


def _words(*groups: tuple[bytes, ...]) -> frozenset[bytes]:
    return frozenset(w.lower() for group in groups for w in group)


def _with_rules(name: str, entity: str, hand: Callable[[Text], Found] | None = None,
                pending: re.Pattern[bytes] | None = None) -> Detector:
    """The detector `name`: its hand-written finder `hand` (asked where one of its
    `_HAND_WORDS` occurs) and its family's gitleaks rules (asked where one of their
    keywords occurs)."""
    rules = RULES.family(name)
    hand_words = _words(_HAND_WORDS.get(name, ()))
    words = rules.keywords | hand_words

    def find(t: Text) -> list[tuple[int, int]]:
        positions = LITERALS.positions(t)
        found = list(hand(t)) if hand is not None and not hand_words.isdisjoint(positions) else []
        return found + rules.find(t, positions)

    return Detector(name, entity, find, max_len=_MAX_LEN[name], pending=pending,
                    gate=LITERALS.gate(words))


# Upper case as AWS issues them, or lower case (AWS and its SDKs take either); a lower
# case one has a digit, as nearly every key id does and `asia…` words do not. Found from
# the prefixes the literal pass saw, by `bytes.find`: a pattern starting with `A` would
# stop at every capital A.
_AWS_KEY_ID_BODY = re.compile(rb"[A-Z0-9]{16,17}")
_AWS_KEY_ID_BODY_LOWER = re.compile(rb"[a-z0-9]{16}")
_AWS_ID_WORDS = _words(_AWS_PREFIXES)
_AWS_LOWER_PREFIXES = (b"akia", b"asia")


def _aws_key_ids(t: Text) -> list[tuple[int, int]]:
    """Key ids, found once a text: the key id detector's findings, and context for the
    secret key's."""
    if t._key_ids is None:
        positions = LITERALS.positions(t)
        t._key_ids = sorted(span for prefix in _AWS_ID_WORDS.intersection(positions)
                            for span in _aws_key_id_spans(t, prefix, positions[prefix]))
    return t._key_ids


def _aws_key_id_spans(t: Text, prefix: bytes, starts: list[int]
                      ) -> Iterator[tuple[int, int]]:
    """Ids starting `prefix` (lower case) at `starts`, in upper case (A3T takes one more
    character: 20 in all, as the others) or, AKIA and ASIA, in lower case."""
    lower_body = _AWS_KEY_ID_BODY_LOWER if prefix in _AWS_LOWER_PREFIXES else None
    for pos in starts:
        upper = t.raw.startswith(prefix.upper(), pos)
        body = _AWS_KEY_ID_BODY if upper else lower_body
        if body is None or not (upper or t.raw.startswith(prefix, pos)):
            continue
        m = body.match(t.raw, pos + len(prefix))
        if m is not None and m.end() - pos == 20 and bounded(t, pos, m.end()) and (
                upper or t.raw[pos + 4 : m.end()].translate(None, NOT_DIGIT)):
            yield pos, m.end()


aws_access_key_id = Detector("aws_access_key_id", "AWS_ACCESS_KEY_ID", _aws_key_ids,
                             max_len=22, reveal=4, gate=LITERALS.gate(_AWS_ID_WORDS))

# An AWS secret access key is 40 characters of base64 with nothing else to recognise it
# by: any 40-character base64 run would do. So one is a finding only within 160 bytes
# after an AWS word ("aws", "secret_access_key", "SecretAccessKey") or a key id, or
# as the whole value of a key-like name (`secret: …`, `"token": "…"`: generic_secrets).
_BASE64_CLASS = bytes(0x62 if BASE64[b] else 0x20 for b in range(256))
_FORTY = b"b" * 40
_AWS_REACH = 160
_SECRET_NAMES = _words(generic_secrets.NAMES)
_SECRET_CUES = _words(generic_secrets.NAMES, generic_secrets.CUES)
_AWS_SECRET_WORDS = _words(_AWS_WORDS) | _AWS_ID_WORDS | _SECRET_NAMES


def _aws_contexts(t: Text) -> Iterator[int]:
    positions, raw = LITERALS.positions(t), t.raw
    for word in _AWS_WORDS:
        for pos in positions.get(word, ()):
            # Not a word's tail (`laws`): an ASCII letter before, read without lowering the text.
            if word != b"aws" or not raw[pos - 1 : pos].isalpha():
                yield pos + len(word)
    for _, e in _aws_key_ids(t):
        yield e


def _aws_secret(t: Text) -> Iterator[tuple[int, int]]:
    """Runs of exactly 40 base64 characters, unpadded, starting within reach of a
    context, or the whole value of a key-like name.

    Base64 characters become "b" and all others a space, so that a run of 40 is a
    literal that `bytes.find` skips to.
    """
    yield from _aws_secret_near_context(t)
    for s, e, _ in generic_secrets.candidates(t, LITERALS.positions(t)):
        if e - s == 40 and not t.raw[s:e].translate(None, _BASE64_CHARS) and _random_looking(
                t, s, e):
            yield s, e


def _aws_secret_near_context(t: Text) -> Iterator[tuple[int, int]]:
    """Runs of exactly 40 base64 characters starting at most `_AWS_REACH` bytes after a
    context, in the same JSON value (no NUL between). Runs are read in windows, contexts
    close together sharing one; a run counts if the last context before it is near."""
    contexts = sorted(set(_aws_contexts(t)))
    raw = t.raw
    windows: list[list[int]] = []
    for ctx in contexts:  # window: from a context to where a run it admits may end, +1
        if windows and ctx <= windows[-1][1]:
            windows[-1][1] = ctx + _AWS_REACH + 41
        else:
            windows.append([ctx, ctx + _AWS_REACH + 41])
    for lo, hi in windows:
        view = raw[lo:hi].translate(_BASE64_CLASS)
        s = view.find(_FORTY)
        while s != -1:
            e = view.find(b" ", s)
            e = len(view) if e == -1 else e
            start, end = lo + s, lo + e
            ctx = contexts[bisect_right(contexts, start) - 1]
            if (e - s == 40 and start - ctx <= _AWS_REACH and not t.at(BASE64, start - 1)
                    and raw[end : end + 1] != b"=" and raw.find(b"\x00", ctx, start) == -1
                    and _random_looking(t, start, end)):
                yield start, end
            s = view.find(_FORTY, e)


_BASE64_CHARS = bytes(b for b in range(256) if BASE64[b])

aws_secret_key = Detector(
    "aws_secret_key", "AWS_SECRET_KEY", _aws_secret, max_len=42,
    gate=LITERALS.gate(_AWS_SECRET_WORDS),
)

github_token = _with_rules(
    "github_token", "GITHUB_TOKEN",
    _prefixed(rb"gh[pousr]_[A-Za-z0-9]{36,251}", rb"github_pat_[A-Za-z0-9_]{22,255}"))
gitlab_token = _with_rules(
    "gitlab_token", "GITLAB_TOKEN",
    _prefixed(rb"glpat-[A-Za-z0-9_-]{20,200}(?:\.[A-Za-z0-9_-]{1,50}){0,2}"))
slack_token = _with_rules("slack_token", "SLACK_TOKEN",
                          _prefixed(rb"xox[abposr]-[A-Za-z0-9-]{10,250}"))
stripe_key = _with_rules(
    "stripe_key", "STRIPE_KEY",
    _prefixed(rb"sk_(?:live|test)_[A-Za-z0-9]{10,247}", rb"rk_(?:live|test)_[A-Za-z0-9]{10,247}"))
openai_key = _with_rules(
    "openai_key", "OPENAI_KEY",
    # Anthropic's keys (`sk-ant-`) are vendor keys, of a rule of their own.
    _prefixed(rb"sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,250}",
              check=_random_looking))

# A finding still arriving at the end of a stream's text: vendor keys are up to ~1 KB
# (a PyPI token), so rather than always holding that much back, a stream holds back the
# run of key characters the text ends with (a run longer than max_len is not a key).
_KEY_DELIMITERS = rb"\s\"'`,;<>(){}\[\]\x00\x01\\"
vendor_key = _with_rules(
    "vendor_key", "VENDOR_KEY",
    pending=re.compile(rb"(?<![^%s])[^%s]++\\?\Z" % (_KEY_DELIMITERS, _KEY_DELIMITERS)),
)
generic_secret = Detector(
    "generic_secret", "SECRET",
    lambda t: generic_secrets.find(t, LITERALS.positions(t)),
    max_len=generic_secrets.MAX_VALUE + 16, gate=LITERALS.gate(_SECRET_CUES),
)

DETECTORS: tuple[Detector, ...] = (
    aws_access_key_id, aws_secret_key, github_token, gitlab_token, slack_token, stripe_key,
    openai_key, vendor_key, generic_secret,
)
