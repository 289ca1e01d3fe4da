"""What to mask (`MaskSpec`) and the masker that applies it to text and to JSON values."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Any

from extproc.masking import detectors, strategies
from extproc.masking.detectors import Detector, Text, scan
from extproc.masking.strategies import Strategy
from extproc.masking.stream import MaskingStream

ALL_DETECTORS: frozenset[str] = frozenset(detectors.BY_NAME)

# Keys whose whole value is masked, whatever it looks like. Compared after
# `normalise_field`, exactly: `token` masks {"token": ...} and {"Token": ...}, not
# {"tokens": 12} (an LLM usage count) nor {"next_page_token": ...}.
DEFAULT_FIELDS: frozenset[str] = frozenset({
    "ssn", "password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "xapikey",
    "accesstoken", "refreshtoken", "idtoken", "sessiontoken", "authtoken", "clientsecret",
    "cardnumber", "cvv", "cvc", "privatekey", "authorization", "secretaccesskey",
    "awssecretaccesskey", "socialsecuritynumber",
})

# The kind of a masked field value that no detector recognises as a whole.
FIELD = Detector("field", "FIELD", lambda t: (), max_len=0)


def normalise_field(name: str) -> str:
    """A key as field rules compare it: case-insensitive, `-` and `_` ignored."""
    return name.lower().replace("-", "").replace("_", "")


@dataclass(frozen=True)
class MaskSpec:
    """What to mask in one body and how.

    detectors: names from `ALL_DETECTORS` (the default); `frozenset()` for none.
    fields: JSON keys whose values are masked whole (normalised on construction); add to
        the defaults with `DEFAULT_FIELDS | {"iban"}`, replace them with `{"iban"}`.
    strategy: for every finding, unless `overrides` names another for its detector
        (a field value counts as its detector when one recognises it whole, else "field").
    actions: the detectors for what an agent is told to do, a model's tool-call
        arguments (`for_actions`); None: the same as `detectors`. An agent acts on
        addresses (a URL, a recipient) that masking would break.
    keep_masked: leave what a strategy already wrote as it is (`strategies.is_masked`):
        a second masking, the audit record's, then shows what the client got.
    """

    detectors: frozenset[str] = ALL_DETECTORS
    fields: frozenset[str] = DEFAULT_FIELDS
    strategy: Strategy = "redact"
    overrides: Mapping[str, Strategy] = field(default_factory=dict, hash=False)
    actions: frozenset[str] | None = None
    keep_masked: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.detectors) - ALL_DETECTORS
        if unknown:
            raise ValueError(f"unknown detectors: {', '.join(sorted(unknown))}")
        unknown = set(self.actions or ()) - ALL_DETECTORS
        if unknown:
            raise ValueError(f"unknown action detectors: {', '.join(sorted(unknown))}")
        unknown = set(self.overrides) - ALL_DETECTORS - {FIELD.name}
        if unknown:
            raise ValueError(f"overrides for unknown detectors: {', '.join(sorted(unknown))}")
        for strategy in (self.strategy, *self.overrides.values()):
            if strategy not in strategies.STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; one of {strategies.STRATEGIES}")
        object.__setattr__(self, "detectors", frozenset(self.detectors))
        object.__setattr__(self, "fields", frozenset(normalise_field(f) for f in self.fields))
        object.__setattr__(self, "overrides", dict(self.overrides))
        if self.actions is not None:
            object.__setattr__(self, "actions", frozenset(self.actions))

    @cached_property
    def for_actions(self) -> MaskSpec:
        """The spec of a model's tool-call arguments: the `actions` detectors, the rest alike."""
        if self.actions is None or self.actions == self.detectors:
            return self
        return replace(self, detectors=self.actions, actions=None)

    @classmethod
    def from_policy(cls, mask: Mapping[str, Sequence[str]]) -> MaskSpec:
        """The spec a policy decision's `mask` asks for.

        `{"detectors": [...], "actions": [...], "fields": [...], "strategy": ["hash"]}`,
        every key optional: detectors named (`"all"` for all); `actions`, when given, the
        detectors of tool-call arguments, else `detectors`; `fields`, when given, are the
        key-name rules (so a policy can leave `ssn` readable for a privileged caller),
        else the defaults apply; one strategy.
        """
        unknown = set(mask) - {"detectors", "actions", "fields", "strategy"}
        if unknown:
            raise ValueError(f"unknown mask keys: {', '.join(sorted(unknown))}")
        strategy = mask.get("strategy", ("redact",))
        if len(strategy) != 1:
            raise ValueError(f"mask strategy must name one strategy, got {list(strategy)}")
        return cls(
            detectors=_named(mask.get("detectors", ())),
            actions=_named(mask["actions"]) if "actions" in mask else None,
            fields=frozenset(mask["fields"]) if "fields" in mask else DEFAULT_FIELDS,
            strategy=strategy[0],  # type: ignore[arg-type]  # checked in __post_init__
        )


def _named(names: Sequence[str]) -> frozenset[str]:
    return ALL_DETECTORS if "all" in names else frozenset(names)


Found = list[tuple[int, int, Detector]]

# A key-name rule where the JSON is text: a server-sent event's `data:` line, JSON
# carried in a string, `password=...` in a form or a log line. Values are bounded so
# that a stream's hold-back stays bounded too.
_MAX_KEY, _MAX_VALUE = 64, 512
_QUOTED_PAIR = re.compile(
    rb'"([A-Za-z0-9_.\-]{1,%d})"\s{0,8}:\s{0,8}"((?:[^"\\]|\\.){0,%d})"' % (_MAX_KEY, _MAX_VALUE)
)
_ASSIGNMENT = re.compile(
    rb"(?<![A-Za-z0-9_.\-])([A-Za-z0-9_.\-]{1,%d})=([^&\s\"';,]{1,%d})" % (_MAX_KEY, _MAX_VALUE)
)


@lru_cache(maxsize=64)
def field_in_text(fields: frozenset[str]) -> Detector:
    """The key-name rules as a detector over text: the value of `"key": "..."` or
    `key=...` where the key is one of `fields` (one detector per set of rules)."""

    def find(t: Text) -> list[tuple[int, int]]:
        found = []
        # Literal prefilters: most texts hold neither form, and a scan costs more than a find.
        patterns = [p for p, sign in ((_QUOTED_PAIR, b'"'), (_ASSIGNMENT, b"=")) if sign in t.raw]
        for pattern in patterns:
            for m in pattern.finditer(t.raw):
                if m.end(2) > m.start(2) and normalise_field(m.group(1).decode()) in fields:
                    found.append((m.start(2), m.end(2)))
        return found

    # Enough hold-back for the key, its separators and the longest value, plus quotes.
    return Detector("field", "FIELD", find, max_len=_MAX_KEY + _MAX_VALUE + 24)


class Masker:
    """Masks text, JSON values and streams; built once, shared by every request.

    `hmac_key` keys the `hash` strategy: keep it secret and stable, or hashes no longer
    join.
    """

    def __init__(self, hmac_key: bytes) -> None:
        if len(hmac_key) < 16:
            raise ValueError("hmac_key must be at least 16 bytes")
        self._key = hmac_key

    def detectors(self, spec: MaskSpec) -> tuple[Detector, ...]:
        chosen = tuple(d for d in detectors.DETECTORS if d.name in spec.detectors)
        return (*chosen, field_in_text(spec.fields)) if spec.fields else chosen

    def analyze(self, text: str, spec: MaskSpec) -> list[tuple[int, int, str]]:
        """Findings in `text` as (start, end, detector name), in characters, merged."""
        raw = _encode(text)
        return [
            (len(_decode(raw[:s])), len(_decode(raw[:e])), d.name)
            for s, e, d in scan(Text(raw), self.detectors(spec))
        ]

    def mask_text(self, text: str, spec: MaskSpec) -> tuple[str, Counter[str]]:
        """`text` with every finding rewritten; counts: detector name -> findings masked."""
        counts: Counter[str] = Counter()
        raw = _encode(text)
        found = _scan(Text(raw), self.detectors(spec), spec.keep_masked)
        if not found:
            return text, counts
        return _decode(self.splice(raw, found, spec, counts)), counts

    def splice(self, raw: bytes, found: Iterable[tuple[int, int, Detector]], spec: MaskSpec,
               counts: Counter[str]) -> bytes:
        """`raw` with each finding (in order, not overlapping) rewritten, and counted."""
        out, pos = [], 0
        for s, e, d in found:
            value = _decode(raw[s:e])
            strategy = spec.overrides.get(d.name, spec.strategy)
            out += (raw[pos:s], _encode(strategies.rewrite(strategy, value, d, self._key)))
            pos = e
            counts[d.name] += 1
        out.append(raw[pos:])
        return b"".join(out)

    def mask_json(self, value: Any, spec: MaskSpec) -> tuple[Any, Counter[str]]:
        """A JSON value (as parsed: dicts, lists, scalars) with what must not pass masked.

        The value is not modified: what changes is copied, what does not is shared.
        Strings are scanned with their key as context (so {"phone": "0612345678"} reads
        as a phone number); keys are never masked. A value under a field rule is masked
        whole, every scalar of it if it is an object or a list, counted as
        `field:<rule>`. An integer of 9 digits or more is scanned as its digits (a card
        number written as a number is still a card) and, if masked, becomes a string.
        Floats, booleans and null pass, except under a field rule (null always passes).
        A model's tool-call arguments are masked as `spec.for_actions` says.
        """
        counts: Counter[str] = Counter()
        doc = _Document(value, spec.fields)
        changes: list[tuple[Any, Any, Any]] = []
        for scalars, part in ((doc.data, spec), (doc.actions, spec.for_actions)):
            found = scalars.findings(self.detectors(part), part.keep_masked)
            for i, rule in scalars.field_rules.items():
                text, spans = scalars.text(i), found.pop(i, [])
                if not (strategies.is_redaction(_encode(text)) if not part.keep_masked
                        else strategies.is_masked(text)):
                    changes.append((*scalars.ref(i), self._mask_field(text, spans, part)))
                    counts[f"field:{rule}"] += 1
            masked = scalars.masked_texts(
                found, lambda raw, spans, part=part: self.splice(raw, spans, part, counts))
            changes += ((*scalars.ref(i), text) for i, text in masked.items())
        return doc.rebuild(changes), counts

    def _mask_field(self, text: str, found: Found, spec: MaskSpec) -> str:
        """A field value masked whole, as the detector that recognises all of it if one does."""
        whole = len(found) == 1 and found[0][1] - found[0][0] == len(_encode(text))
        kind = found[0][2] if whole else FIELD
        strategy = spec.overrides.get(kind.name, spec.strategy)
        return strategies.rewrite(strategy, text, kind, self._key)

    def stream(self, spec: MaskSpec) -> MaskingStream:
        """A masker for a body that arrives in chunks (text/event-stream, chunked text)."""
        return MaskingStream(self, spec)


def _scan(t: Text, dets: tuple[Detector, ...], keep_masked: bool) -> Found:
    """`scan` without redaction tokens (masked again they would only lose their kind);
    with `keep_masked`, without anything a strategy already wrote."""
    found = scan(t, dets)
    if not found:
        return found
    return strategies.unmasked(t.raw, found) if keep_masked else strategies.unredacted(
        t.raw, found)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


_BIG = 10**8  # integers from 9 digits on can be SSNs, phone numbers or cards

# Where a model's tool call holds its arguments, what an agent acts on: the key of an
# object that is the value of `function` (chat completions, and the legacy
# `function_call`) or `custom` (a custom tool's free-form input), or of an object of a
# `type` (the Responses API's items and stream events).
_ACTION_UNDER = {"function": "arguments", "function_call": "arguments", "custom": "input"}
_ACTION_OF_TYPE = {
    "function_call": "arguments", "custom_tool_call": "input",
    "response.function_call_arguments.delta": "delta",
    "response.function_call_arguments.done": "arguments",
    "response.custom_tool_call_input.delta": "delta",
    "response.custom_tool_call_input.done": "input",
}


class _Scalars:
    """Scalars of a JSON value masked alike, scanned as one text.

    Scalar i (a string, an integer of 9+ digits, or any scalar under a field rule) is
    `pieces[4i:4i+4]` = key, SOH, text, NUL (the key of a list item is the list's) and
    sits at `refs[2i:2i+2]` = container, key.
    """

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.refs: list[Any] = []
        self.field_rules: dict[int, str] = {}
        self._raw = b""  # the joined text, once scanned
        self._apart = False  # scanned scalar by scalar (see `findings`)

    def add(self, node: Any, at: Any, key: str, text: str, rule: str | None) -> None:
        """Scalar `text`, at `node[at]`, under `key` and field rule `rule` (if any)."""
        if rule is not None:
            self.field_rules[len(self.refs) >> 1] = rule
        self.pieces.extend((key, "\x01", text, "\x00"))
        self.refs.extend((node, at))

    def text(self, i: int) -> str:
        return self.pieces[4 * i + 2]

    def ref(self, i: int) -> tuple[Any, Any]:
        return self.refs[2 * i], self.refs[2 * i + 1]

    def findings(self, dets: tuple[Detector, ...], keep_masked: bool) -> dict[int, Found]:
        """Scalar index -> its findings, offsets in the joined text, from one scan of all."""
        if not dets or not self.pieces:
            return {}
        self._raw = raw = _encode("".join(self.pieces))
        n = len(self.refs) >> 1
        if raw.count(b"\x00") != n or raw.count(b"\x01") != n:
            # A key or value holds a separator byte itself: scan each scalar on its own.
            return self._findings_apart(dets, keep_masked)
        out: dict[int, Found] = {}
        index, counted = 0, 0
        for s, e, d in _scan(Text(raw), dets, keep_masked):
            index += raw.count(b"\x00", counted, s)
            counted = s
            if raw.rfind(b"\x01", 0, s) > raw.rfind(b"\x00", 0, s):  # keys are never masked
                out.setdefault(index, []).append((s, e, d))
        return out

    def _findings_apart(self, dets: tuple[Detector, ...], keep_masked: bool
                        ) -> dict[int, Found]:
        """Findings per scalar, offsets in its own text, each scanned after its key."""
        self._apart = True
        out: dict[int, Found] = {}
        for i in range(len(self.refs) >> 1):
            head = len(_encode(self.pieces[4 * i])) + 1
            raw = _encode(self.pieces[4 * i]) + b"\x01" + _encode(self.text(i))
            spans = [(s - head, e - head, d) for s, e, d in _scan(Text(raw), dets, keep_masked)
                     if s >= head]
            if spans:
                out[i] = spans
        return out

    def masked_texts(self, found: dict[int, Found],
                     splice: Callable[[bytes, Found], bytes]) -> dict[int, str]:
        """The texts of the scalars in `found`, their findings rewritten by `splice`."""
        if self._apart:
            return {i: _decode(splice(_encode(self.text(i)), spans)) for i, spans in found.items()}
        if not found:
            return {}
        spans = sorted(span for spans in found.values() for span in spans)
        parts = _decode(splice(self._raw, spans)).split("\x00")
        return {i: parts[i].partition("\x01")[2] for i in found}


class _Document:
    """A JSON value's scalars to scan — what an agent reads (`data`) apart from what it is
    told to do (`actions`: a model's tool-call arguments) — then its copy-on-write rebuild."""

    def __init__(self, root: Any, fields: frozenset[str]) -> None:
        self.root = root
        self.data, self.actions = _Scalars(), _Scalars()
        self._parents: dict[int, tuple[Any, Any]] = {}
        self._holder = [root]  # the root sits in a one-element list: it too has a container
        self._shared = False  # a container reached twice (built in Python, not parsed)
        self._walk(fields)
        if self._shared:
            # The rebuild copies each container once, under one parent: a container the
            # value holds in two places would stay unmasked in the other. Untangled, each
            # place has its own.
            self.__init__(_untangled(root), fields)  # type: ignore[misc]

    def _walk(self, fields: frozenset[str]) -> None:
        actions, parents = self.actions, self._parents
        pieces, refs, found_refs, rules = (
            self.data.pieces.extend, self.data.refs.extend, self.data.refs, self.data.field_rules)
        keys: dict[Any, tuple[str, str | None]] = {}  # key -> its text, its field rule
        # A container, its key, the field rule over it, which of its keys holds a tool
        # call's arguments (if any), whether it is inside such arguments.
        stack: list[tuple[Any, str, str | None, str | None, bool]] = [
            (self._holder, "", None, None, False)]
        while stack:
            node, key, inner, holds, acting = stack.pop()
            rule = inner
            is_dict = type(node) is dict
            if is_dict and holds is None and not acting:
                kind = node.get("type")
                holds = _ACTION_OF_TYPE.get(kind) if type(kind) is str else None
            for k, v in node.items() if is_dict else enumerate(node):
                if is_dict:
                    if (known := keys.get(k)) is None:
                        name = normalise_field(str(k))
                        known = keys[k] = (str(k), name if name in fields else None)
                    key, inner = known
                    inner = inner or rule
                t = type(v)
                if t is str:
                    text = v
                elif t is dict or t is list:
                    if id(v) in parents:
                        self._shared = True
                    parents[id(v)] = (node, k)
                    action = acting or (holds is not None and k == holds)
                    stack.append((v, key, inner, None if action or not is_dict
                                  else _ACTION_UNDER.get(k), action))
                    continue
                elif inner is not None and v is not None:
                    text = _scalar_text(v)
                elif t is int and not -_BIG < v < _BIG:
                    text = str(v)
                else:
                    continue
                if acting or (holds is not None and k == holds):
                    actions.add(node, k, key, text, inner)
                    continue
                if inner is not None:
                    rules[len(found_refs) >> 1] = inner
                pieces((key, "\x01", text, "\x00"))
                refs((node, k))

    def rebuild(self, changes: list[tuple[Any, Any, Any]]) -> Any:
        """The root with `changes` (container, key, new value) made on copies of their paths."""
        copies: dict[int, Any] = {}
        for node, key, value in changes:
            path = []  # node and its ancestors not copied yet, bottom up
            up = node
            while id(up) not in copies:
                path.append(up)
                if up is self._holder:
                    break
                up = self._parents[id(up)][0]
            for original in reversed(path):
                copies[id(original)] = copy = (
                    dict(original) if type(original) is dict else list(original)
                )
                if original is not self._holder:
                    parent, at = self._parents[id(original)]
                    copies[id(parent)][at] = copy
            copies[id(node)][key] = value
        return copies[id(self._holder)][0] if copies else self.root


def _untangled(value: Any) -> Any:
    """A copy of a JSON value's containers, none of them shared (scalars are kept)."""
    if type(value) is dict:
        return {k: _untangled(v) for k, v in value.items()}
    if type(value) is list:
        return [_untangled(v) for v in value]
    return value


def _scalar_text(value: Any) -> str:
    """A non-string scalar as JSON writes it (what a field rule masks)."""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)
