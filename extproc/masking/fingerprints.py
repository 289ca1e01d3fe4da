"""Keyed fingerprints of the protected values in a text: what the flow keeps of a value
an agent received unmasked, and what a request leaving later is checked against
(activity/flow.py, docs/flows.md).

A fingerprint is an HMAC-SHA256 of the value's canonical form (the form the `hash`
strategy hashes: an e-mail in lower case, a card's or an SSN's digits), under a key
derived from the masking key, so it is the same however the value was spelled, and
the store that keeps it never holds the value. The detectors read the text as masking
reads it, decoded forms included (decoding.py: percent-encoded, base64, entities ...),
so a value sent base64'd is the value received in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote_plus

from extproc.masking.decoding import Recoded
from extproc.masking.detectors import Detector, Text, scan
from extproc.masking.masker import ALL_DETECTORS, Masker, MaskSpec

# What the flow fingerprints by default: values that identify a person or open an account,
# which an agent has no business sending on. Phone numbers and IP addresses are left
# out: too many ordinary numbers and addresses read as one.
DEFAULT_KINDS = frozenset({
    "email", "credit_card", "us_ssn", "iban", "aws_access_key_id", "aws_secret_key",
    "github_token", "gitlab_token", "slack_token", "stripe_key", "openai_key", "jwt",
    "private_key", "connection_password", "vendor_key", "generic_secret",
})
# The most values kept of one answer (the rest pass unkept, and the record says so).
MOST_PER_ANSWER = 1000
_SEPARATOR = "\n\n"  # between a JSON value's strings: no detector reads across it
_UNESCAPED = 3


class Fingerprints:
    """The fingerprints of values of `kinds` (detector names) in texts and JSON values.
    Built once per process; `key` is derived from the masker's, so every worker and every
    replica configured with the same masking key agrees."""

    def __init__(self, masker: Masker, kinds: Iterable[str] = DEFAULT_KINDS) -> None:
        kinds = frozenset(kinds)
        if unknown := kinds - ALL_DETECTORS:
            raise ValueError(f"unknown detectors: {', '.join(sorted(unknown))}")
        self.kinds = kinds
        self._masker = masker
        self._detectors: dict[frozenset[str], tuple[Detector, ...]] = {}  # by kinds asked
        self._key = hmac.new(masker.key, b"tollgate flow fingerprints",
                             hashlib.sha256).digest()

    def unmasked(self, spec: MaskSpec | None) -> frozenset[str]:
        """The kinds a value can pass in unmasked under `spec` (what the answer's
        decision masks): the others' values were masked, and need no reading."""
        return self.kinds if spec is None else self.kinds - spec.detectors

    def of_text(self, text: str, kinds: frozenset[str] | None = None) -> dict[str, str]:
        """digest -> detector name of each value of `kinds` (default: all this keeps)
        found in `text`, at most `MOST_PER_ANSWER`."""
        kinds = self.kinds if kinds is None else kinds
        if not kinds or not text:
            return {}
        detectors = self._detectors.get(kinds)
        if detectors is None:
            detectors = self._detectors[kinds] = self._masker.detectors(
                MaskSpec(detectors=kinds, fields=frozenset()))
        raw = _SEPARATOR.join(_unescaped(text)).encode("utf-8", "surrogatepass")
        found: dict[str, str] = {}
        for kind, value in _values(raw, scan(Text(raw), detectors)):
            canonical = kind.canonical(value).encode("utf-8", "surrogatepass")
            digest = hmac.new(self._key, kind.name.encode() + b":" + canonical,
                              hashlib.sha256).hexdigest()[:32]
            found[digest] = kind.name
            if len(found) >= MOST_PER_ANSWER:
                break
        return found

    def of_json(self, value: Any, kinds: frozenset[str] | None = None) -> dict[str, str]:
        """The fingerprints of the strings and numbers in a JSON value (keys included)."""
        return self.of_text(_SEPARATOR.join(strings(value)), kinds)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (keys too), numbers as they are written."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for key, item in node.items():
                yield str(key)
                stack.append(item)
        elif isinstance(node, list | tuple):
            stack.extend(reversed(node))
        elif isinstance(node, int | float) and not isinstance(node, bool):
            yield str(node)


def _unescaped(text: str) -> Iterator[str]:
    """The text, and as it reads once URL escapes and HTML entities are undone (up to
    `_UNESCAPED` times: a parameter inside a URL inside a parameter). The detectors read
    encoded values in place too, but a run of escaped values reads as one: a form's
    `a%40x.example%2C%20b%40y.example` is two addresses only once unescaped."""
    yield text
    for _ in range(_UNESCAPED):
        if "%" not in text and "&" not in text and "+" not in text:
            return
        plain = html.unescape(unquote_plus(text))
        if plain == text:
            return
        yield plain
        text = plain


def _values(raw: bytes, found: list[tuple[int, int, Detector]]
            ) -> Iterator[tuple[Detector, str]]:
    """Each finding's detector and value as it reads decoded (a finding in a decoded view
    is the value it decodes to, however deep)."""
    for start, end, detector in found:
        if isinstance(detector, Recoded):
            yield from _values(detector.decoded, list(detector.found))
        else:
            yield detector, raw[start:end].decode("utf-8", "replace")
