"""Vendor key formats as data: gitleaks' rule set, read at import.

Vendors publish the shape of their keys (npm's `npm_` and 36 characters, SendGrid's
`SG.` and 66...), and gitleaks (MIT licence) maintains ~220 of them as rules: a regular
expression, the keywords without which it cannot match, an entropy floor for what
it captures. Tollgate ships a copy (data/gitleaks.toml, attribution in its header)
rather than a hand list, so that updating the formats is replacing that file.

A rule's expression is Go (RE2) syntax; `translate` makes it Python's where the two
differ (flags set mid-expression, `\\z`, POSIX classes) and where tollgate's texts
differ from files: a JSON value is written `key SOH value NUL` (see Text.before), so the
rules' `key = value` operators take SOH too and their terminators NUL. Rules that are
generic (keyword and entropy only: `generic_secret` does this), that another detector
has (JWTs, PEM keys), that only name files, or that read across any number of lines
are skipped: SKIPPED says which and why.

A rule runs only near an occurrence of one of its keywords (found for all rules at
once by the one Hyperscan pass, prefilter.py): a match counts when a keyword occurs in it
or at most `REACH` bytes before it, and only what the rule captures (its secret) is a
finding, not the `name =` before it.
"""

from __future__ import annotations

import importlib
import math
import re
import tomllib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from extproc.masking import compiled
from extproc.masking.detectors import Text

DATA = compiled.DATA / "gitleaks.toml"
# Formats gitleaks lacks (Azure storage, Docker Hub, Google OAuth, Stripe webhooks).
EXTRA = DATA.with_name("tollgate_rules.toml")

# How far before a match one of its keywords may occur: a vendor's name before a key
# that does not carry it (`AIRTABLE_TOKEN: pat…`, `sourcegraph … <40 hex>`).
REACH = 64

SKIPPED: Mapping[str, str] = {
    "generic-api-key": "generic: any key-like name and entropy (generic_secret does this)",
    "hashicorp-tf-password": "generic: any `password = \"…\"` (generic_secret does this)",
    "jwt": "the jwt detector (which also checks the header)",
    "private-key": "the private_key detector",
    "pkcs12-file": "names a file, no content to match",
    "curl-auth-header": "reads any number of lines between `curl` and its header",
    "curl-auth-user": "reads any number of lines between `curl` and its user",
    "kubernetes-secret-yaml": "reads hundreds of bytes of YAML lines; YAML files only",
    "aws-access-token": "the aws_access_key_id detector (every IAM prefix, either case)",
}

# Which detector a rule's findings belong to: the vendors tollgate named detectors for
# before it read gitleaks keep their names (policies refer to them); the rest is one.
FAMILIES: Mapping[str, str] = {
    "github-": "github_token",
    "gitlab-": "gitlab_token", "slack-": "slack_token", "stripe-": "stripe_key",
    "openai-": "openai_key",
}
OTHERS = "vendor_key"

# The one rule whose first group is a piece of the secret (a JWT header's field), not it.
_WHOLE_MATCH = frozenset({"jwt-base64"})

_POSIX = {"[:alnum:]": "a-zA-Z0-9", "[:alpha:]": "a-zA-Z", "[:digit:]": "0-9",
          "[:xdigit:]": "0-9A-Fa-f", "[:upper:]": "A-Z", "[:lower:]": "a-z"}
_OPERATOR = r"(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)"
_TERMINATOR = r"""[\x60'"\s;]"""
# After a key: a JSON value's NUL, and prose's and markup's punctuation (`…, please`).
_BEFORE = r"""[\\'"\x60\s>=:(,)]"""  # azure-ad-client-secret's
_AFTER = r"""(?:$|[\\'"\x60\s<),])"""
_SEPARATORS = ((_OPERATOR, _OPERATOR[:-1] + r"|\x01)"),
               (_TERMINATOR, _TERMINATOR[:-1] + r"\x00,.)\]}>&<|]"),
               (_BEFORE, _BEFORE[:-1] + r"\x01]"), (_AFTER, _AFTER[:-2] + r"\x00.])"))
# Python's own parser of expressions: their widths, and the literals they start with.
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")


def translate(go: str) -> str:
    """A Go (RE2) expression as Python's `re` reads it the same way."""
    python = go.replace(r"\z", r"\Z")
    for posix, ascii_class in _POSIX.items():
        python = python.replace(posix, ascii_class)
    while (at := python.find("(?i)", 1)) != -1:
        python = _scoped(python, at)
    return python


def _scoped(regex: str, at: int) -> str:
    """`(?i)` set at `at`, mid-expression: Go applies it to the rest of the enclosing
    group, Python only at the start of all. Each rest of a branch becomes `(?i:…)`."""
    out, branch, depth, i = [regex[:at]], [], 0, at + 4
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            branch.append(regex[i : i + 2])
            i += 2
            continue
        if c == "[":  # a class, to its closing bracket (a `]` first is a member)
            j = i + 1 + (regex[i + 1] == "^")
            j = regex.index("]", j + 1 if regex[j] == "]" else j)
            while regex[j - 1] == "\\":
                j = regex.index("]", j + 1)
            branch.append(regex[i : j + 1])
            i = j + 1
            continue
        if depth == 0 and c in ")|":
            out.append(f"(?i:{''.join(branch)}){c}")
            branch = []
            if c == ")":
                return "".join(out) + regex[i + 1 :]
            i += 1
            continue
        depth += (c == "(") - (c == ")")
        branch.append(c)
        i += 1
    return "".join(out) + f"(?i:{''.join(branch)})"


@dataclass(frozen=True, slots=True)
class Rule:
    """One vendor format, compiled: `width` bounds its matches' length (capped: see
    `load`), `group` is what it captures (None: its first non-empty group). An
    `anchored` rule's every match starts with one of its keywords (`ghp_…`), so it is
    tried only there, with one `match` call each, rather than searched around them."""

    id: str
    family: str
    pattern: re.Pattern[bytes]
    keywords: tuple[bytes, ...]
    entropy: float
    group: int | None
    allow: tuple[re.Pattern[bytes], ...]
    width: int
    anchored: bool


def entropy(secret: bytes) -> float:
    """Shannon entropy in bits per byte, as gitleaks measures a rule's floor."""
    n = len(secret)
    return -sum(map(_terms(n).__getitem__, Counter(secret).values())) if n else 0.0


@lru_cache(maxsize=1024)
def _terms(n: int) -> tuple[float, ...]:
    """`c / n * log2(c / n)` for every count `c` of a byte in `n`, as `entropy` sums them
    (the same operations: the same sum, bit for bit), computed once per length."""
    return (0.0, *(c / n * math.log2(c / n) for c in range(1, n + 1)))


def _family(rule_id: str) -> str:
    return next((name for prefix, name in FAMILIES.items() if rule_id.startswith(prefix)),
                OTHERS)


def _compiled(go: str) -> re.Pattern[bytes]:
    python = translate(go)
    for theirs, ours in _SEPARATORS:
        python = python.replace(theirs, ours)
    return re.compile(python.encode())


def _prefixes(tree: Any) -> list[bytes]:
    """The literal text each match of a parsed expression starts with, one per way it
    can start (lower case; b"" where it starts with anything else)."""
    out = bytearray()
    for op, arg in tree:
        if op is _constants.AT:
            continue
        if op is _constants.LITERAL:
            out += bytes([arg]).lower()
            continue
        if op is _constants.SUBPATTERN:
            return [bytes(out) + p for p in _prefixes(arg[-1])]
        if op is _constants.BRANCH:
            return [bytes(out) + p for branch in arg[1] for p in _prefixes(branch)]
        break
    return [bytes(out)]


def load(caps: Mapping[str, int], paths: tuple[Path, ...] = (DATA, EXTRA)) -> RuleSet:
    """The kept rules of the files at `paths` (the first one's global allowlist holds
    secrets that are never findings: `true`, `${VAR}`, `{{ var }}`, paths...).

    `caps`: each family's longest finding (its detector's `max_len`); a rule's width
    (unbounded: `+`, `{250,}`) is capped there, and a match is searched within it.
    """
    config, *more = (tomllib.loads(p.read_text(encoding="utf-8")) for p in paths)
    rules = []
    for raw in (r for c in (config, *more) for r in c["rules"]):
        if raw["id"] in SKIPPED:
            continue
        family = _family(raw["id"])
        pattern = _compiled(raw["regex"])
        keywords = tuple(k.lower().encode() for k in raw["keywords"])
        tree = _parser.parse(pattern.pattern, pattern.flags)
        rules.append(Rule(
            raw["id"], family, pattern, keywords, float(raw.get("entropy", 0.0)),
            0 if raw["id"] in _WHOLE_MATCH else raw.get("secretGroup"),
            tuple(_compiled(r) for a in raw.get("allowlists", ())
                  if "paths" not in a and a.get("regexTarget", "secret") == "secret"
                  for r in a.get("regexes", ())),
            min(tree.getwidth()[1], caps[family]),
            all(p.startswith(keywords) for p in _prefixes(tree)),
        ))
    return RuleSet(tuple(rules), tuple(_compiled(r) for r in config["allowlist"]["regexes"]))


class RuleSet:
    """Rules, indexed by keyword, and the allowlist they share."""

    def __init__(self, rules: tuple[Rule, ...], allow: tuple[re.Pattern[bytes], ...]) -> None:
        self.rules, self.allow = rules, allow
        self.keywords = frozenset(k for r in rules for k in r.keywords)
        self._by_keyword: dict[bytes, list[Rule]] = {}
        for r in rules:
            for k in r.keywords:
                self._by_keyword.setdefault(k, []).append(r)

    def family(self, name: str) -> RuleSet:
        return RuleSet(tuple(r for r in self.rules if r.family == name), self.allow)

    def find(self, t: Text, positions: Mapping[bytes, list[int]]) -> list[tuple[int, int]]:
        """The secrets the rules find in `t`, given where keywords occur in it (any
        keywords: those of no rule here are ignored)."""
        found: list[tuple[int, int]] = []
        done: set[str] = set()
        for k in self.keywords.intersection(positions):
            for rule in self._by_keyword[k]:
                if rule.id not in done:
                    done.add(rule.id)
                    found += self._secrets(t, rule, _matches(t, rule, positions))
        return found

    def _secrets(self, t: Text, rule: Rule, matched: list[re.Match[bytes]]
                 ) -> Iterator[tuple[int, int]]:
        for m in matched:
            span = _secret(m, rule.group)
            if span is not None and _is_secret(t.raw[span[0] : span[1]], rule, self.allow):
                yield span


def _matches(t: Text, rule: Rule, positions: Mapping[bytes, list[int]]
             ) -> list[re.Match[bytes]]:
    """Matches at (anchored) or around the rule's keywords' occurrences.

    Around: searched in windows (a match holds at most `width` bytes, so none that
    counts lies outside), each cut one byte past the longest match that could count,
    so that `\\b` and `$` read as in the whole text."""
    keywords = rule.keywords
    starts = (positions[keywords[0]] if len(keywords) == 1
              else sorted(pos for k in keywords for pos in positions.get(k, ())))
    raw = t.raw
    if rule.anchored:
        match = rule.pattern.match
        return [m for ks in starts if (m := match(raw, ks)) is not None]
    width, end = rule.width, len(raw)
    windows: list[list[int]] = []
    for ks in starts:
        lo, hi = max(0, ks - width), min(end, ks + REACH + width + 1)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi
        else:
            windows.append([lo, hi])
    matched = []
    for lo, hi in windows:
        for m in rule.pattern.finditer(raw, lo, hi):
            near = bisect_left(starts, m.start() - REACH)
            if near < len(starts) and starts[near] < m.end():  # a keyword in it or before
                matched.append(m)
    return matched


def _secret(m: re.Match[bytes], group: int | None) -> tuple[int, int] | None:
    """What a match captures: its `group`, else its first non-empty group, else all."""
    if group is not None:
        return m.span(group) if m.start(group) < m.end(group) else None
    for g in range(1, (m.re.groups or 0) + 1):
        if m.start(g) < m.end(g):
            return m.span(g)
    return m.span() if m.re.groups == 0 else None


def _is_secret(secret: bytes, rule: Rule, allow: tuple[re.Pattern[bytes], ...]) -> bool:
    if rule.entropy and entropy(secret) <= rule.entropy:
        return False
    return not any(a.search(secret) for a in (*rule.allow, *allow))
