"""Vendor keys from gitleaks' rule set (extproc/masking/vendor_rules.py).

Every kept rule is tested with a sample generated from its own expression (`sample`, a
walk of the parsed expression choosing characters at random, seeded by the rule's id):
the sample is masked in text, in a JSON value, and in a stream; and the same sample with
its keywords broken (`ghp_` -> `gxp_`) is not found by the rule.
"""

from __future__ import annotations

import base64
import random
import re
import re._parser as sre_parse  # type: ignore[import-not-found]
import string
import tomllib
from typing import Any

import pytest

from extproc.masking import Masker, MaskSpec, keys, vendor_rules
from extproc.masking.detectors import Text
from extproc.masking.vendor_rules import Rule, RuleSet
from tests.masking.conftest import KEY, found

RULES = {r.id: r for r in keys.RULES.rules}

# What the rule set holds and what tollgate keeps of it: a change to either (a new
# gitleaks copy, a rule skipped) must be decided, not happen.
GITLEAKS_RULES, TOLLGATE_RULES = 222, 5
KEPT_RULES = 218

_PRINTABLE = [c for c in (string.ascii_letters + string.digits + "_-").encode()]
_ANY = [c for c in range(0x21, 0x7F)]


def _members(items: list[tuple[Any, Any]]) -> list[int]:
    """The bytes a class (`[...]`) admits, letters and digits first."""
    negate = False
    chars: set[int] = set()
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(arg)
        elif name == "RANGE":
            chars.update(range(arg[0], arg[1] + 1))
        elif name == "CATEGORY":
            cat = str(arg)
            pool = (string.digits if "DIGIT" in cat else string.whitespace if "SPACE" in cat
                    else string.ascii_letters + string.digits + "_")
            members = {ord(c) for c in pool}
            chars.update(set(range(256)) - members if "NOT" in cat else members)
    if negate:
        chars = set(_ANY) - chars
    preferred = [c for c in _PRINTABLE if c in chars]
    return preferred or sorted(chars & set(_ANY)) or sorted(chars)


def _emit(tree: Any, rnd: random.Random, out: bytearray) -> None:
    for op, arg in tree:
        name = str(op)
        if name == "LITERAL":
            out.append(arg)
        elif name == "NOT_LITERAL":
            out.append(rnd.choice([c for c in _PRINTABLE if c != arg]))
        elif name == "ANY":
            out.append(rnd.choice(_PRINTABLE))
        elif name == "IN":
            out.append(rnd.choice(_members(arg)))
        elif name == "BRANCH":
            _emit(rnd.choice(arg[1]), rnd, out)
        elif name == "SUBPATTERN":
            _emit(arg[3], rnd, out)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, item = arg
            high = min(high, low + 12)
            count = low if low == 0 else rnd.randint(low, high)
            for _ in range(count):
                _emit(item, rnd, out)
        # AT (\b, ^, $) and assertions emit nothing: the sample is set between spaces.


def sample(rule: Rule, seed: int = 0) -> bytes:
    """A text the rule matches, with a secret over its entropy floor and allowlists."""
    tree = sre_parse.parse(rule.pattern.pattern, rule.pattern.flags)
    for attempt in range(200):
        rnd = random.Random(f"{rule.id}/{seed}/{attempt}")
        out = bytearray()
        _emit(tree, rnd, out)
        text = bytes(out)
        if not any(k in text.lower() for k in rule.keywords):
            text = rule.keywords[0] + b" " + text  # a vendor's name before its key
        t = Text(b"see " + text + b" here")
        if rule_finds(rule, t):
            return text
    raise AssertionError(f"no sample for {rule.id}")


def secret_of(rule: Rule, text: bytes) -> bytes:
    t = Text(b"see " + text + b" here")
    s, e = rule_finds(rule, t)[0]
    return t.raw[s:e]


def rule_finds(rule: Rule, t: Text) -> list[tuple[int, int]]:
    """What `rule` alone finds in `t`."""
    positions = {k: [m.start() for m in re.finditer(re.escape(k), t.lower)]
                 for k in rule.keywords}
    return RuleSet((rule,), keys.RULES.allow).find(t, positions)


def broken(rule: Rule, text: bytes) -> bytes:
    """`text` with every keyword of the rule broken: a letter or digit of it replaced."""
    for keyword in sorted(rule.keywords, key=len, reverse=True):
        pattern = re.compile(re.escape(keyword), re.IGNORECASE)
        text = pattern.sub(lambda m: _mangle(m.group()), text)
    return text


def _mangle(word: bytes) -> bytes:
    at = next(i for i, c in enumerate(word) if chr(c).isalnum())
    return word[:at] + (b"q" if word[at : at + 1].lower() != b"q" else b"j") + word[at + 1 :]


def test_the_rule_set_is_what_was_decided() -> None:
    gitleaks, ours = (tomllib.loads(p.read_text())["rules"]
                      for p in (vendor_rules.DATA, vendor_rules.EXTRA))
    assert (len(gitleaks), len(ours)) == (GITLEAKS_RULES, TOLLGATE_RULES)
    assert len(keys.RULES.rules) == KEPT_RULES
    assert set(vendor_rules.SKIPPED) <= {r["id"] for r in gitleaks}
    assert KEPT_RULES + len(vendor_rules.SKIPPED) == GITLEAKS_RULES + TOLLGATE_RULES


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(KEY)


SPEC = MaskSpec()


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_every_rule_masks_its_sample(rule_id: str, masker: Masker) -> None:
    rule = RULES[rule_id]
    text = sample(rule)
    secret = secret_of(rule, text).decode()
    masked, counts = masker.mask_text(f"here it is: {text.decode()}\nthanks", SPEC)
    assert secret not in masked and counts[rule.family] >= 1, masked


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_a_broken_sample_is_not_a_finding(rule_id: str) -> None:
    rule = RULES[rule_id]
    text = b"see " + broken(rule, sample(rule)) + b" here"
    assert rule_finds(rule, Text(text)) == []


def test_a_sample_in_a_json_value_is_masked(masker: Masker) -> None:
    """Keys in JSON values: each rule's sample, as the value of an unrelated key."""
    missed = []
    for rule in RULES.values():
        text = sample(rule).decode()
        masked, _ = masker.mask_json({"note": text}, SPEC)
        if secret_of(rule, sample(rule)).decode() in masked["note"]:
            missed.append(rule.id)
    assert missed == []


@pytest.mark.parametrize("rule_id", ["pypi-upload-token", "facebook-page-access-token",
                                     "1password-service-account-token", "slack-webhook-url",
                                     "npm-access-token"])
def test_a_stream_masks_a_key_cut_anywhere(rule_id: str, masker: Masker) -> None:
    """A vendor key up to ~1 KB long is held back while it may still be arriving, however
    the body is cut: the stream's output is mask_text's."""
    text = f"config follows\n{sample(RULES[rule_id]).decode()}\nand that is all"
    expected, _ = masker.mask_text(text, SPEC)
    for size in (1, 7, 64):
        stream = masker.stream(SPEC)
        out = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert out + stream.finish() == expected


def test_a_long_key_is_held_back_but_prose_is_not(masker: Masker) -> None:
    """vendor_key's hold-back is the key-like run at the end of what arrived, not its
    max_len (a kilobyte): prose is released up to the other detectors' hold."""
    stream = masker.stream(SPEC)
    assert keys.vendor_key.max_len > stream.hold
    released = stream.feed("All good. " * 200)
    assert len(released) == 2000 - stream.hold
    stream = masker.stream(SPEC)
    released = stream.feed("All good. " * 100 + "pypi-AgEIcHlwaS5vcmc" + "A1b2C3d4" * 40)
    assert "pypi-" not in released


AZURE_KEY = base64.b64encode(bytes(range(7, 71))).decode()  # 88 characters, "=="
PROSE = (
    "Ask the team: the task is risky. Tests passed. See commit "
    "4b825dc642cb6eb9a060e54bf8d69288fbee4904 and request "
    "550e8400-e29b-41d4-a716-446655440000; version 1.2.3-beta, build 20241023174846. "
    "The SKU is SK-1234 and the desk is S.12. Our api-version is 2024-06-01, the author "
    "wrote the auth docs, tokens: 4096, max_tokens=1024, api_key: <your-api-key>, "
    "token: ${GITHUB_TOKEN}, secret: {{ .Values.secret }}, password: changeme."
)


def test_prose_and_identifiers_are_no_vendor_keys() -> None:
    assert found("vendor_key", PROSE) == []
    assert found("generic_secret", PROSE) == []


@pytest.mark.parametrize(
    ("detector", "text", "secret"),
    [
        ("vendor_key", f"AZURE=DefaultEndpointsProtocol=https;AccountName=x;AccountKey="
         f"{AZURE_KEY};EndpointSuffix=core.windows.net", AZURE_KEY),
        ("vendor_key", "docker login -p dckr_pat_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9", "dckr_pat_"
         + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9"),
        ("vendor_key", "secret GOCSPX-" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9t", "GOCSPX-"
         + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9t"),
        ("stripe_key", "whsec_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW", "whsec_"
         + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW"),
        ("vendor_key", "the new one is npm_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5" + ", ok",
         "npm_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"),
        ("slack_token", "hook https://hooks.slack.com/services/T0AB1CD2E/B0FG3HI4J/"
         + "aB3dE5fG7hI9jK1lM3nO5pQ7", "https://hooks.slack.com/services/T0AB1CD2E/B0FG3HI4J/"
         + "aB3dE5fG7hI9jK1lM3nO5pQ7"),
        ("gitlab_token", "glrt-" + "aB3dE5fG7hI9jK1lM3nO", "glrt-aB3dE5fG7hI9jK1lM3nO"),
        ("vendor_key", "key sk-ant-api03-" + "a1B2c3D4e5" * 9 + "xyzAA", "sk-ant-api03-"
         + "a1B2c3D4e5" * 9 + "xyzAA"),
    ],
)
def test_named_formats(detector: str, text: str, secret: str) -> None:
    """Formats the issue names, each found by the detector policies know it by."""
    assert found(detector, text) == [secret]
