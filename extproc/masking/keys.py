"""Cloud and SaaS credentials: AWS key pairs and the tokens vendors mark with a prefix."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from extproc.masking.detectors import (
    BASE64,
    DIGIT,
    NOT_DIGIT,
    TOKEN,
    Detector,
    Found,
    Text,
    both,
    bounded,
    matches,
)

# --- cloud and SaaS credentials -----------------------------------------------------------


def _token(t: Text, s: int, e: int) -> tuple[int, int] | None:
    return (s, e) if bounded(t, s, e, TOKEN) else None


def _random_looking(t: Text, s: int, e: int) -> tuple[int, int] | None:
    """A generated key mixes cases and digits; prose and identifiers rarely do all three."""
    body = t.raw[s:e]
    if body.lower() == body or body.upper() == body or not any(DIGIT[c] for c in body):
        return None
    return _token(t, s, e)


def _prefixed(*patterns: bytes, check: Callable[[Text, int, int], tuple[int, int] | None] = _token
              ) -> Callable[[Text], Found]:
    return both(*(matches(re.compile(p), check) for p in patterns))


# Upper case as AWS issues them, or lower case (AWS and its SDKs take either); a lower
# case one has a digit, as nearly every key id does and `asia…` words do not.
_AWS_KEY_ID = re.compile(rb"A[KS]IA[A-Z0-9]{16}")
_AWS_KEY_ID_LOWER = (re.compile(rb"akia[a-z0-9]{16}"), re.compile(rb"asia[a-z0-9]{16}"))


def _aws_key_id_lower(t: Text, s: int, e: int) -> tuple[int, int] | None:
    return (s, e) if bounded(t, s, e) and t.raw[s + 4 : e].translate(
        None, NOT_DIGIT) else None


def _aws_key_ids(t: Text) -> list[tuple[int, int]]:
    """Key ids, found once a text: the key id detector's findings, and context for the
    secret key's."""
    if t._key_ids is None:
        t._key_ids = [m.span() for m in _AWS_KEY_ID.finditer(t.raw) if bounded(t, *m.span())]
        t._key_ids += [span for pattern in _AWS_KEY_ID_LOWER if pattern.pattern[:4] in t.raw
                       for m in pattern.finditer(t.raw)
                       if (span := _aws_key_id_lower(t, *m.span()))]
    return t._key_ids


def _aws_key_id_gate(t: Text) -> bool:
    return b"akia" in t.lower or b"asia" in t.lower


aws_access_key_id = Detector("aws_access_key_id", "AWS_ACCESS_KEY_ID", _aws_key_ids,
                             max_len=22, reveal=4, gate=_aws_key_id_gate)

# An AWS secret access key is 40 characters of base64 with nothing else to recognise it
# by: any 40-character base64 run would do. So one is a finding only within 160 bytes
# after an AWS word ("aws", "secret_access_key", "SecretAccessKey") or a key id.
_BASE64_CLASS = bytes(0x62 if BASE64[b] else 0x20 for b in range(256))
_FORTY = b"b" * 40
_AWS_WORDS = (b"aws", b"secretaccesskey", b"secret_access_key")
_AWS_REACH = 160


def _aws_contexts(t: Text) -> Iterator[int]:
    lower = t.lower
    for word in _AWS_WORDS:
        pos = lower.find(word)
        while pos != -1:
            if word != b"aws" or not (pos and 0x61 <= lower[pos - 1] <= 0x7A):
                yield pos + len(word)
            pos = lower.find(word, pos + 1)
    for _, e in _aws_key_ids(t):
        yield e


def _aws_secret(t: Text) -> Iterator[tuple[int, int]]:
    """Runs of exactly 40 base64 characters, unpadded, starting within reach of a context.

    Base64 characters become "b" and all others a space, so that a run of 40 is a
    literal that `bytes.find` skips to.
    """
    contexts = sorted(set(_aws_contexts(t)))
    if not contexts:
        return
    view = t.raw.translate(_BASE64_CLASS)
    seen: set[int] = set()
    for ctx in contexts:
        stop = t.raw.find(b"\x00", ctx)
        reach = min(len(t.raw) if stop == -1 else stop, ctx + _AWS_REACH + 40)
        s = view.find(_FORTY, ctx, reach)
        while s != -1 and s <= ctx + _AWS_REACH:
            e = view.find(b" ", s)
            e = len(view) if e == -1 else e
            if (e - s == 40 and s not in seen and not t.at(BASE64, s - 1)
                    and t.raw[e : e + 1] != b"=" and _random_looking(t, s, e)):
                seen.add(s)
                yield s, e
            s = view.find(_FORTY, e, reach)


aws_secret_key = Detector(
    "aws_secret_key", "AWS_SECRET_KEY", _aws_secret, max_len=42,
    gate=lambda t: b"aws" in t.lower or b"secret" in t.lower or _aws_key_id_gate(t),
)

github_token = Detector(
    "github_token", "GITHUB_TOKEN",
    _prefixed(rb"gh[pousr]_[A-Za-z0-9]{36,251}", rb"github_pat_[A-Za-z0-9_]{22,255}"),
    max_len=268, gate=lambda t: b"gh" in t.raw or b"github_pat_" in t.raw,
)
gitlab_token = Detector(
    "gitlab_token", "GITLAB_TOKEN",
    _prefixed(rb"glpat-[A-Za-z0-9_-]{20,200}(?:\.[A-Za-z0-9_-]{1,50}){0,2}"), max_len=310,
    gate=lambda t: b"glpat-" in t.raw,
)
slack_token = Detector("slack_token", "SLACK_TOKEN",
                       _prefixed(rb"xox[abposr]-[A-Za-z0-9-]{10,250}"), max_len=257,
                       gate=lambda t: b"xox" in t.raw)
stripe_key = Detector(
    "stripe_key", "STRIPE_KEY",
    _prefixed(rb"sk_(?:live|test)_[A-Za-z0-9]{10,247}", rb"rk_(?:live|test)_[A-Za-z0-9]{10,247}"),
    max_len=257, gate=lambda t: b"k_live_" in t.raw or b"k_test_" in t.raw,
)
openai_key = Detector(
    "openai_key", "OPENAI_KEY",
    _prefixed(rb"sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,250}", check=_random_looking),
    max_len=266, gate=lambda t: b"sk-" in t.raw,
)

DETECTORS: tuple[Detector, ...] = (
    aws_access_key_id, aws_secret_key, github_token, gitlab_token, slack_token, stripe_key,
    openai_key,
)
