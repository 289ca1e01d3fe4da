"""What to mask (`MaskSpec`) and the masker that applies it to text and to JSON values."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache, partial
from typing import Any

from extproc.masking import (
    catalog,
    decoding,
    key_rules,
    ner,
    people,
    phone_context,
    strategies,
)
from extproc.masking.decoding import Recoded
from extproc.masking.detectors import Detector, Text, scan
from extproc.masking.images import ImageMasker
from extproc.masking.key_rules import FIELDS, column_rules, field_in_text, normalise_field
from extproc.masking.prefilter import PASS
from extproc.masking.strategies import Strategy
from extproc.masking.stream import MaskingStream

ALL_DETECTORS: frozenset[str] = frozenset(catalog.BY_NAME)

# Keys whose whole value is masked, whatever it looks like: key_rules.py's one table.
DEFAULT_FIELDS = FIELDS

# A text for `Masker.warm` that wakes most detectors' lazy parts.
_WARM_TEXT = ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x call +49 30 1234567, "
              "mail a@b.example, 4111 1111 1111 1111, DE89370400440532013000, 10.0.0.1")

# A derived rule naming every column (an unknown lineage: `SELECT * FROM f()`).
DERIVED_ALL = "*"

# The kind of a masked field value that no detector recognises as a whole.
FIELD = Detector("field", "FIELD", lambda _t: (), max_len=0)


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
    derived: result columns (JSON keys, a table's column names; normalised) whose values
        the SQL computed from a protected column (interpret/sql/lineage.py): masked whole
        as `[REDACTED:DERIVED]`, whatever they look like and whatever the strategy;
        `*` names every column.
    model: the kinds (`ner.KINDS`: "person", "address") the local NER model finds in
        free text (JSON string values, plain text bodies; see ner.py), besides the
        detectors; empty (the default): the model is not run.
    transforms: the spellings no mark gives away that text is also read in
        (`decoding.TRANSFORMS`: "rot13", "reversed"), for whole texts and JSON (not
        streams); the MCP front asks for them on servers' answers.
    """

    detectors: frozenset[str] = ALL_DETECTORS
    fields: frozenset[str] = DEFAULT_FIELDS
    strategy: Strategy = "redact"
    overrides: Mapping[str, Strategy] = field(default_factory=dict, hash=False)
    actions: frozenset[str] | None = None
    keep_masked: bool = False
    derived: frozenset[str] = frozenset()
    model: frozenset[str] = frozenset()
    transforms: frozenset[str] = frozenset()

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
        if unknown := set(self.transforms) - decoding.TRANSFORMS.keys():
            raise ValueError(f"unknown transforms: {', '.join(sorted(unknown))}; "
                             f"some of {sorted(decoding.TRANSFORMS)}")
        if unknown := set(self.model) - ner.KINDS:
            raise ValueError(f"unknown model kinds: {', '.join(sorted(unknown))}; "
                             f"some of {sorted(ner.KINDS)}")
        for strategy in (self.strategy, *self.overrides.values()):
            if strategy not in strategies.STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; one of {strategies.STRATEGIES}")
        object.__setattr__(self, "detectors", frozenset(self.detectors))
        object.__setattr__(self, "fields", frozenset(normalise_field(f) for f in self.fields))
        object.__setattr__(self, "derived", frozenset(map(normalise_field, self.derived)))
        object.__setattr__(self, "overrides", dict(self.overrides))
        object.__setattr__(self, "model", frozenset(self.model))
        object.__setattr__(self, "transforms", frozenset(self.transforms))
        if self.actions is not None:
            object.__setattr__(self, "actions", frozenset(self.actions))

    @cached_property
    def for_actions(self) -> MaskSpec:
        """The spec of a model's tool-call arguments: the `actions` detectors, the rest alike."""
        if self.actions is None or self.actions == self.detectors:
            return self
        return replace(self, detectors=self.actions, actions=None)

    @cached_property
    def for_server_answers(self) -> MaskSpec:
        """The spec of an MCP server's answers: read rot13 and backwards too, as a hostile
        server may spell a value so to carry it past the detectors."""
        return replace(self, transforms=frozenset(decoding.TRANSFORMS))

    @classmethod
    def from_policy(cls, mask: Mapping[str, Sequence[str]]) -> MaskSpec:
        """The spec a policy decision's `mask` asks for.

        `{"detectors": [...], "actions": [...], "fields": [...], "strategy": ["hash"]}`,
        every key optional: detectors named (`"all"` for all); `actions`, when given, the
        detectors of tool-call arguments, else `detectors`; `fields`, when given, are the
        key-name rules (so a policy can leave `ssn` readable for a privileged caller),
        keys or named sets of the table (`@default`, `@credentials`: key_rules.py),
        else the defaults apply; one strategy; `model`: the kinds the NER model finds
        (`["person", "address"]`, `"all"` for both), besides the detectors.
        """
        unknown = set(mask) - {"detectors", "actions", "fields", "strategy", "derived", "model"}
        if unknown:
            raise ValueError(f"unknown mask keys: {', '.join(sorted(unknown))}")
        strategy = mask.get("strategy", ("redact",))
        if len(strategy) != 1:
            raise ValueError(f"mask strategy must name one strategy, got {list(strategy)}")
        return cls(
            detectors=_named(mask.get("detectors", ())),
            actions=_named(mask["actions"]) if "actions" in mask else None,
            fields=_fields(mask["fields"]) if "fields" in mask else DEFAULT_FIELDS,
            derived=frozenset(mask.get("derived", ())),
            model=ner.KINDS if "all" in mask.get("model", ()) else frozenset(mask.get("model", ())),
            strategy=strategy[0],  # type: ignore[arg-type]  # checked in __post_init__
        )


def _named(names: Sequence[str]) -> frozenset[str]:
    return ALL_DETECTORS if "all" in names else frozenset(names)


def _fields(names: Sequence[str]) -> frozenset[str]:
    """A policy's field names, each a key or a named set of key_rules.py's table."""
    unknown = {n for n in names if n.startswith("@") and n not in key_rules.SETS}
    if unknown:
        raise ValueError(f"unknown field sets: {', '.join(sorted(unknown))}; "
                         f"one of {', '.join(sorted(key_rules.SETS))}")
    return frozenset().union(*(key_rules.SETS.get(n, (n,)) for n in names))


Found = list[tuple[int, int, Detector]]

@lru_cache(maxsize=256)
def _detectors(names: frozenset[str], fields: frozenset[str],
               transforms: frozenset[str] = frozenset()) -> tuple[Detector, ...]:
    """The detectors a spec names, in scanning order (chosen once per spec: every body
    masked, the record's included, asks again)."""
    chosen = tuple(d for d in catalog.DETECTORS if d.name in names)
    if fields:
        chosen = (*chosen, field_in_text(fields))
    # Last: the same detectors on the text's decoded (and transformed) forms (decoding.py).
    return (*chosen, decoding.detector(chosen, transforms=transforms)) if chosen else chosen


class Masker:
    """Masks text, JSON values and streams; built once, shared by every request.

    `hmac_key` keys the `hash` strategy: keep it secret and stable, or hashes no longer
    join. `model`: the NER model a spec's `model` asks for (None: a spec asking for it
    fails, closed). `images`: what masks the text in images (images.py), within its bounds.
    """

    def __init__(self, hmac_key: bytes, model: ner.Model | None = None,
                 images: ImageMasker | None = None) -> None:
        if len(hmac_key) < 16:
            raise ValueError("hmac_key must be at least 16 bytes")
        self._key = hmac_key
        self.model = model
        self.images = images or ImageMasker()

    @property
    def key(self) -> bytes:
        """The `hash` strategy's key, from which the flow's fingerprints derive theirs."""
        return self._key

    def detectors(self, spec: MaskSpec) -> tuple[Detector, ...]:
        return _detectors(spec.detectors, spec.fields, spec.transforms)

    def warm(self) -> None:
        """Build now what masking otherwise builds on first use (the one pass's
        databases, tables read from data files): a process's first request or record must
        not wait tenths of a second for it, a strict record's commit deadline least of all."""
        PASS.compile()
        self.mask_json({"note": _WARM_TEXT, "password": "x"}, MaskSpec())

    def analyze(self, text: str, spec: MaskSpec) -> list[tuple[int, int, str]]:
        """Findings in `text` as (start, end, detector name), in characters, merged."""
        raw = _encode(text)
        return [
            (len(_decode(raw[:s])), len(_decode(raw[:e])), d.name)
            for s, e, d in scan(Text(raw), self.detectors(spec))
        ]

    def mask_text(self, text: str, spec: MaskSpec, delimiter: str | None = None
                  ) -> tuple[str, Counter[str]]:
        """`text` with every finding rewritten; counts: detector name -> findings masked.

        `delimiter`: the text is a table (CSV: ","), whose header row's names are keys
        for the key-name rules (see `column_rules`).
        """
        counts: Counter[str] = Counter()
        raw = _encode(text)
        dets = self.detectors(spec)
        if delimiter is not None:
            dets = (*dets, *people.columns(spec.detectors, delimiter))
            if spec.fields:
                dets = (*dets, column_rules(spec.fields, delimiter))
        found = _scan(Text(raw), dets, spec.keep_masked)
        if found:
            text = _decode(self.splice(raw, found, spec, counts))
        if spec.model and delimiter is None:
            text = self._modelled([text], spec, counts)[0] or text
        return text, counts

    def _modelled(self, texts: list[str], spec: MaskSpec, counts: Counter[str]
                  ) -> list[str | None]:
        """`texts` (masked by the detectors) with what the model finds rewritten too
        (None: a text unchanged); a body it could not finish within its budget counted
        as `ner.UNFINISHED`."""
        if self.model is None:
            raise ner.ModelUnavailable(
                "the policy's mask asks for the masking model, and tollgate was started "
                "without one (config masking.model)")
        found, finished = self.model.find(texts, spec.model)
        if not finished:
            counts[ner.UNFINISHED] += 1
        out: list[str | None] = []
        for text, spans in zip(texts, found, strict=True):
            raw = _encode(text)
            kept = _scan_free(raw, spans, spec.keep_masked)
            out.append(_decode(self.splice(raw, kept, spec, counts)) if kept else None)
        return out

    def splice(self, raw: bytes, found: Iterable[tuple[int, int, Detector]], spec: MaskSpec,
               counts: Counter[str]) -> bytes:
        """`raw` with each finding (in order, not overlapping) rewritten, and counted."""
        out: list[bytes] = []
        names: list[str] = []  # counted at the end, by `Counter.update` in C
        overrides, default = spec.overrides, spec.strategy
        pos = 0
        for s, e, d in found:
            if type(d) is Recoded:  # masked as decoded, written back in its encoding
                assert d.codec is not None
                out += (raw[pos:s], d.codec.encode(
                    self.splice(d.decoded, d.found, spec, counts), raw[s:e]))
                pos = e
                continue
            strategy = overrides.get(d.name, default) if overrides else default
            out += (raw[pos:s], _redaction(d) if strategy == "redact" else _encode(
                strategies.rewrite(strategy, _decode(raw[s:e]), d, self._key)))
            pos = e
            names.append(d.name)
        out.append(raw[pos:])
        counts.update(names)
        return b"".join(out)

    def mask_json(self, value: Any, spec: MaskSpec) -> tuple[Any, Counter[str]]:
        """A JSON value (as parsed: dicts, lists, scalars) with what must not pass masked.

        The value is not modified: what changes is copied, what does not is shared.
        Strings are scanned with their key as context (so {"phone": "0612345678"} reads
        as a phone number). A value under a field rule is masked whole, every scalar of
        it if it is an object or a list, counted as `field:<rule>`; a table's cells
        (`{"columns": [...], "rows": [[...]]}`, see `_table`) are under their column's
        name as under a key. A number of 9 digits or more (7 or more under a phone key,
        `msisdn`), an integer or a float without a fraction, is scanned as its digits (a
        card number written as a number is still a card) and, if masked, becomes a string.
        Other floats, booleans and null pass, except under a field rule (null always
        passes). Keys are scanned too, each distinct key once: a key that is data
        (`{"ann@example.com": {...}}`) is renamed masked (`[REDACTED:EMAIL_ADDRESS]`, then
        ` #2`... where two would collide). A model's tool-call arguments are masked as
        `spec.for_actions` says.
        """
        counts: Counter[str] = Counter()
        doc = _Document(value, spec.fields | spec.derived)
        changes: list[tuple[Any, Any, Any]] = []
        renames = [self._masked_keys(keys, part, counts) for keys, part in (
            (doc.data_keys, spec), (doc.action_keys, spec.for_actions))]
        parts = ((doc.data, spec), (doc.actions, spec.for_actions))
        for acting, (scalars, part) in enumerate(parts):
            found = scalars.findings(self.detectors(part), part.keep_masked)
            for i, rule in scalars.field_rules.items():
                text, spans = scalars.text(i), found.pop(i, [])
                if not (strategies.is_redaction(_encode(text)) if not part.keep_masked
                        else strategies.is_masked(text)):
                    changes.append((*scalars.ref(i), strategies.DERIVED if rule in part.derived
                                    else self._mask_field(text, spans, part)))
                    counts[f"field:{rule}"] += 1
            masked = scalars.masked_texts(found, partial(self.splice, spec=part, counts=counts))
            changes += ((*scalars.ref(i), text) for i, text in masked.items())
            if spec.model and not acting:
                changes += self._modelled_scalars(scalars, masked, spec, counts)
        return doc.rebuild(changes, *renames), counts

    def _modelled_scalars(self, scalars: _Scalars, masked: dict[int, str], spec: MaskSpec,
                          counts: Counter[str]) -> list[tuple[Any, Any, Any]]:
        """The changes the model makes to the string values of what an agent reads (not
        to its tool calls' arguments, nor to values a field rule masked whole)."""
        chosen = [i for i in range(len(scalars.refs) >> 1) if i not in scalars.field_rules
                  and type(scalars.ref(i)[0][scalars.ref(i)[1]]) is str]
        texts = [masked.get(i, scalars.text(i)) for i in chosen]
        return [(*scalars.ref(i), text) for i, text in zip(
            chosen, self._modelled(texts, spec, counts), strict=True) if text is not None]

    def _masked_keys(self, keys: Mapping[Any, _KeyInfo], spec: MaskSpec, counts: Counter[str]
                     ) -> dict[str, str]:
        """Key -> its masked text, for the keys with findings (scanned without context)."""
        scalars = _Scalars()
        for k, (_, _, scanned) in keys.items():
            if scanned:
                scalars.add(None, k, "", k, None)
        found = scalars.findings(self.detectors(spec), spec.keep_masked)
        masked = scalars.masked_texts(
            found, lambda raw, spans: self.splice(raw, spans, spec, counts))
        return {scalars.ref(i)[1]: text for i, text in masked.items()}

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
    return strategies.unmasked(t.source, found) if keep_masked else strategies.unredacted(
        t.source, found)


def _scan_free(raw: bytes, spans: list[ner.Span], keep_masked: bool) -> Found:
    """The model's findings (character spans in `raw`'s text) as byte spans, in order,
    merged where they overlap, without what a strategy already wrote."""
    text = _decode(raw)
    merged: Found = []
    for s, e, d in sorted(spans, key=lambda span: span[0]):
        bs, be = len(_encode(text[:s])), len(_encode(text[:e]))
        if merged and bs < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(be, merged[-1][1]), merged[-1][2])
        else:
            merged.append((bs, be, d))
    if not merged:
        return merged
    return strategies.unmasked(raw, merged) if keep_masked else _without_tokens(raw, merged)


def _without_tokens(raw: bytes, found: Found) -> Found:
    """`found` without findings that touch a redaction token (the model reads
    `[REDACTED:PERSON]` as words like any other)."""
    tokens = [m.span() for m in re.finditer(rb"\[(?:REDACTED|HASH):[^\]]*\]", raw)]
    return [(s, e, d) for s, e, d in found if not any(a < e and s < b for a, b in tokens)]


@lru_cache(maxsize=256)
def _redaction(d: Detector) -> bytes:
    """What `redact` writes for `d`'s findings, encoded: the same for every finding."""
    return _encode(strategies.redact(d))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


_BIG = 10**8  # numbers from 9 digits on can be SSNs, phone numbers or cards
_PHONE_SHORTEST = 10**6  # a local number without its area code: 7 digits

# A key shorter than the shortest token without a digit (a Slack token's 15 characters)
# and without any of these holds no finding: most keys (`name`, `card_number`) are not
# scanned at all, which would cost a scan's fixed ~150 µs a document.
_KEY_PLAIN_MAX = 15
_KEY_DATA_HINT = re.compile(r"[0-9@:=\"]|[^\x00-\x7f]")

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
        # Scalars scanned on their own (see `findings`), and where each of the others is
        # in the joined text (None: scalar i is its i-th value).
        self._apart: frozenset[int] = frozenset()
        self._position: dict[int, int] | None = None

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
        """Scalar index -> its findings, from one scan of all of them joined (offsets in
        the joined text). A scalar whose key or text holds a separator byte itself is
        scanned on its own (offsets in its own text); the others are still scanned joined,
        so that one such string cannot make a whole document cost a scan per string."""
        if not dets or not self.pieces:
            return {}
        pieces = self.pieces
        n = len(self.refs) >> 1
        raw = _encode("".join(pieces))
        joined: Sequence[int] = range(n)
        out: dict[int, Found] = {}
        if raw.count(b"\x00") != n or raw.count(b"\x01") != n:
            self._apart = frozenset(i for i in range(n) if _SEPARATED.search(pieces[4 * i])
                                    or _SEPARATED.search(pieces[4 * i + 2]))
            joined = [i for i in range(n) if i not in self._apart]
            self._position = {i: position for position, i in enumerate(joined)}
            raw = _encode("".join(pieces[4 * i + k] for i in joined for k in range(4)))
            out.update(self._findings_apart(dets, keep_masked, self._apart))
        self._raw = raw
        index, counted = 0, 0
        crossing: set[int] = set()
        for s, e, d in self._scan(raw, joined, dets, keep_masked) if raw else ():
            index += raw.count(b"\x00", counted, s)
            counted = s
            if raw.rfind(b"\x01", 0, s) <= raw.rfind(b"\x00", 0, s):
                continue  # keys are never masked
            if (ends := raw.count(b"\x00", s, e)) > 0:
                # A finding that runs on past its scalar's end (a field rule's value
                # read into the next): spliced whole, it would move every later scalar's
                # text into another's place. It ends where its scalar does; the scalars
                # it ran over are read on their own.
                out.setdefault(joined[index], []).append((s, raw.index(b"\x00", s), d))
                crossing.update(joined[index + 1:index + ends + 1])
                continue
            out.setdefault(joined[index], []).append((s, e, d))
        if crossing:
            for i in crossing:
                out.pop(i, None)
            self._apart |= crossing
            out.update(self._findings_apart(dets, keep_masked, crossing))
        if self._position is None and n > 1:  # every scalar joined: where each is is known
            self._split_values(raw, dets, keep_masked, out)
        return out

    def _split_values(self, raw: bytes, dets: tuple[Detector, ...], keep_masked: bool,
                      out: dict[int, Found]) -> None:
        """Findings of values split across the strings of a list (a key file kept as a
        notebook's list of lines, a card cut in two items): each list's string items
        read joined, in one scan for all lists, and each finding that crosses from one
        item into the next masked in every item it covers, as that item's finding."""
        runs = list(_list_runs(self.pieces, self.refs, self.field_rules))
        if not runs:
            return
        ends = [m.start() for m in _NUL.finditer(raw)]  # where each scalar ends in `raw`
        parts: list[bytes] = []
        places: list[tuple[int, int, int, int]] = []  # joined at, scalar, raw at, length
        at = 0
        for run in runs:
            for i in run:
                begins = raw.index(b"\x01", ends[i - 1] + 1 if i else 0) + 1
                places.append((at, i, begins, ends[i] - begins))
                parts.append(raw[begins:ends[i]])
                at += ends[i] - begins
            parts.append(b"\x00")
            at += 1
        offsets = [place[0] for place in places]
        joined = b"".join(parts)
        for s, e, d in _scan(Text(joined), dets, keep_masked):
            first, last = bisect_right(offsets, s) - 1, bisect_right(offsets, e - 1) - 1
            if first == last or b"\x00" in joined[s:e]:
                continue  # within one item (found there already), or across two lists
            # One item's value that took in its neighbour ("Ada Lovelace", "ada@x.io"),
            # not a value cut between them: the rule of strings joined in a text too.
            whole = not (joined[places[first][0]:s].strip()
                         or joined[e:places[last][0] + places[last][3]].strip())
            own = [k for k, (_, i, _, _) in enumerate(places[first:last + 1])
                   if any(found.name == d.name for _, _, found in out.get(i, ()))]
            if not decoding.cut_between(own, whole):
                continue
            while type(d) is Recoded:  # each piece is masked as what the value is
                d = d.found[0][2]
            for joined_at, i, raw_at, length in places[first:last + 1]:
                a, b = max(s, joined_at) - joined_at, min(e, joined_at + length) - joined_at
                if b > a:
                    out[i] = _merged([*out.get(i, []), (raw_at + a, raw_at + b, d)])

    def _scan(self, raw: bytes, joined: Sequence[int], dets: tuple[Detector, ...],
              keep_masked: bool) -> Found:
        """`_scan` of the joined scalars, telling phone numbers which of them share an
        object (for the country a record names: phone_context.country)."""
        text = Text(raw)
        refs = self.refs
        text.memo[phone_context.CONTAINERS] = lambda: [id(refs[2 * i]) for i in joined]
        return _scan(text, dets, keep_masked)

    def _findings_apart(self, dets: tuple[Detector, ...], keep_masked: bool,
                        which: Iterable[int]) -> dict[int, Found]:
        """Findings of the scalars `which`, each scanned on its own after its key, offsets
        in its own text."""
        out: dict[int, Found] = {}
        for i in sorted(which):
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
        apart = self._apart
        out = {i: _decode(splice(_encode(self.text(i)), spans))
               for i, spans in found.items() if i in apart}
        spans = sorted(span for i, spans in found.items() if i not in apart for span in spans)
        if spans:
            parts = _decode(splice(self._raw, spans)).split("\x00")
            position = self._position
            out.update({i: parts[i if position is None else position[i]].partition("\x01")[2]
                        for i in found if i not in apart})
        return out


def _list_runs(pieces: list[str], refs: list[Any], rules: Mapping[int, str]
               ) -> Iterator[list[int]]:
    """Runs of two or more scalars that are items of one list of strings only (pieces of
    a text, not a record's fields), one after the other, under one key (not a table's
    row, whose cells are under their columns' names; none under a field rule: those are
    masked whole)."""
    run: list[int] = []
    texts: dict[int, bool] = {}  # id of a list -> whether it holds strings only
    for i in range(len(refs) >> 1):
        node, at = refs[2 * i], refs[2 * i + 1]
        item = type(node) is list and i not in rules and texts.setdefault(
            id(node), all(type(x) is str for x in node))
        if (item and run and refs[2 * run[-1]] is node and refs[2 * run[-1] + 1] + 1 == at
                and pieces[4 * run[-1]] == pieces[4 * i]):
            run.append(i)
            continue
        if len(run) > 1:
            yield run
        run = [i] if item else []
    if len(run) > 1:
        yield run


def _merged(spans: Found) -> Found:
    """`spans` in order, those that overlap as one (the longer one's detector)."""
    out: Found = []
    for s, e, d in sorted(spans, key=lambda span: span[0]):
        if out and s < out[-1][1]:
            ps, pe, pd = out[-1]
            out[-1] = (ps, max(pe, e), d if e - s > pe - ps else pd)
        else:
            out.append((s, e, d))
    return out


_NUL = re.compile(b"\x00")
# A separator byte in a key or a value: that scalar is scanned on its own.
_SEPARATED = re.compile("[\x00\x01]")


def _named_value(node: dict[Any, Any], fields: frozenset[str]) -> str | None:
    """The field rule over `node["value"]` where `node` names it (`{"name": "DB_PASSWORD",
    "value": …}`: a Kubernetes env var, a HAR header, a cookie jar's cookie): the name
    normalised, if it is a key-name rule's, a secret's or a session cookie's."""
    name = node.get("name")
    if type(name) is not str or "value" not in node or len(name) > key_rules.MAX_KEY:
        return None
    rule = normalise_field(name)
    return rule if key_rules.named_rule(rule, fields) else None


class _Document:
    """A JSON value's scalars to scan — what an agent reads (`data`) apart from what it is
    told to do (`actions`: a model's tool-call arguments), and the distinct keys of each —
    then its copy-on-write rebuild."""

    def __init__(self, root: Any, fields: frozenset[str]) -> None:
        self._read(root, fields)
        if self._shared:
            # The rebuild copies each container once, under one parent: a container the
            # value holds in two places would stay unmasked in the other. Untangled, each
            # place has its own.
            self._read(_untangled(root), fields)

    def _read(self, root: Any, fields: frozenset[str]) -> None:
        self.root = root
        self.data, self.actions = _Scalars(), _Scalars()
        self.data_keys: Mapping[Any, _KeyInfo] = {}
        self.action_keys: Mapping[Any, _KeyInfo] = {}
        self._parents: dict[int, tuple[Any, Any]] = {}
        self._acting: set[int] = set()  # containers inside a tool call's arguments
        self._holder = [root]  # the root sits in a one-element list: it too has a container
        self._shared = False  # a container reached twice (built in Python, not parsed)
        self._walk(fields)

    def _walk(self, fields: frozenset[str]) -> None:
        actions = self.actions
        pieces, refs, found_refs, rules = (
            self.data.pieces.extend, self.data.refs.extend, self.data.refs, self.data.field_rules)
        # key -> what `_key` says of it; one per part, so each lists its keys
        data_keys: dict[Any, _KeyInfo] = {}
        action_keys: dict[Any, _KeyInfo] = {}
        # A container, its key, the field rule over it, which of its keys holds a tool
        # call's arguments (if any), whether it is inside such arguments, and if it is a
        # table's list of rows or one row, the table's column names (see `_table`).
        stack: list[tuple[Any, str, str | None, str | None, bool, _Part | None]] = [
            (self._holder, "", None, None, False, None)]
        while stack:
            node, key, inner, holds, acting, part = stack.pop()
            rule, own_key = inner, key
            is_dict = type(node) is dict
            keys = action_keys if acting else data_keys
            holds, table, rows, row = _frame(node, is_dict, holds, acting, part, fields)
            named = _named_value(node, fields) if is_dict else None
            k: Any  # a key of a dict, an index of a list
            for k, v in node.items() if is_dict else enumerate(node):
                if is_dict:
                    if (known := keys.get(k)) is None:
                        known = keys[k] = _key(k, fields)
                    key, inner, _ = known
                    inner = inner or (named if k == "value" else None) or rule
                elif row is not None:  # a table's cell: under its column's name
                    key, inner = row[k] if k < len(row) else (own_key, None)
                    inner = inner or rule
                t = type(v)
                if t is str:
                    text = v
                elif t is dict or t is list:
                    action = acting or (holds is not None and k == holds)
                    self._adopt(node, k, v, action)
                    stack.append((v, key, inner, None if action or not is_dict
                                  else _ACTION_UNDER.get(k), action, _part(k, t, table, rows)))
                    continue
                elif (text := _scanned_text(v, t, inner, key)) is None:
                    continue
                if acting or (holds is not None and k == holds):
                    actions.add(node, k, key, text, inner)
                    continue
                if inner is not None:
                    rules[len(found_refs) >> 1] = inner
                pieces((key, "\x01", text, "\x00"))
                refs((node, k))
        self.data_keys, self.action_keys = data_keys, action_keys

    def _adopt(self, node: Any, at: Any, child: Any, acting: bool) -> None:
        """Note container `child`'s place, `node[at]`, for the rebuild."""
        if id(child) in self._parents:
            self._shared = True
        self._parents[id(child)] = (node, at)
        if acting:
            self._acting.add(id(child))

    def rebuild(self, changes: list[tuple[Any, Any, Any]], data_renames: dict[str, str],
                action_renames: dict[str, str]) -> Any:
        """The root with `changes` (container, key, new value) made on copies of their
        paths, then the keys in `*_renames` renamed in every object holding one."""
        copies: dict[int, Any] = {}
        for node, key, value in changes:
            self._copied(node, copies)[key] = value
        if data_renames or action_renames:
            renamed: dict[int, dict[Any, Any]] = {}  # object -> its keys' new names
            for parent, at in list(self._parents.values()):
                node = parent[at]
                names = action_renames if id(node) in self._acting else data_renames
                if type(node) is dict and names and not names.keys().isdisjoint(node):
                    self._rename(node, names, copies, renamed)
        return copies[id(self._holder)][0] if copies else self.root

    def _copied(self, node: Any, copies: dict[int, Any]) -> Any:
        """The copy of `node`, made (with its ancestors' not made yet) if need be."""
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
        return copies[id(node)]

    def _rename(self, node: dict[Any, Any], names: dict[str, str], copies: dict[int, Any],
                renamed: dict[int, dict[Any, Any]]) -> None:
        """Replace `node`'s copy by one with its keys renamed, in order; a new name taken
        already (by another key, or the same masked twice) gets ` #2`, ` #3`..."""
        copy = self._copied(node, copies)
        out: dict[Any, Any] = {}
        new_names = renamed[id(node)] = {}
        for k, v in copy.items():
            new = names.get(k, k) if type(k) is str else k
            if new != k:
                n, base = 1, new
                while new in out or new in copy:
                    n += 1
                    new = f"{base} #{n}"
                new_names[k] = new
            out[new] = v
        copies[id(node)] = out
        parent, at = self._parents[id(node)]
        copies[id(parent)][renamed.get(id(parent), {}).get(at, at)] = out


# A table as SQL APIs answer (the demo's /sql, Datasette's `_shape=arrays`, Trino):
# column names beside rows that are arrays of cells. Its column names, each with its
# field rule; a part of one: "rows" (the list of rows) or "row", with the names.
_Names = tuple[tuple[str, str | None], ...]
_Part = tuple[str, _Names]
_COLUMNS, _ROWS = ("columns", "fields"), ("rows", "data", "values")


def _table(node: dict[Any, Any], fields: frozenset[str]) -> tuple[str, _Names] | None:
    """`node`'s rows key and column names, if it is a table: a list of names (or of
    objects with a `name`) beside a list of rows."""
    columns = next((c for k in _COLUMNS if type(c := node.get(k)) is list), None)
    at = next((k for k in _ROWS if type(node.get(k)) is list), None)
    if columns is None or at is None:
        return None
    names = []
    for column in columns:
        name = column.get("name") if type(column) is dict else column
        text = name if type(name) is str else ""
        rule = normalise_field(text)
        names.append((text, _rule(rule, fields)))
    return at, tuple(names)


def _frame(node: Any, is_dict: bool, holds: str | None, acting: bool, part: _Part | None,
           fields: frozenset[str]
           ) -> tuple[str | None, tuple[str, _Names] | None, _Names | None, _Names | None]:
    """What the walk knows of a container before its items: the key holding a tool call's
    arguments (a typed block's `type` names it), the table it is (rows key, names), and
    the column names of the rows it lists or of the row it is."""
    rows = row = None
    if part is not None:
        rows, row = (part[1], None) if part[0] == "rows" else (None, part[1])
    if not is_dict:
        return holds, None, rows, row
    if holds is None and not acting:
        kind = node.get("type")
        holds = _ACTION_OF_TYPE.get(kind) if type(kind) is str else None
    table = _table(node, fields) if "columns" in node or "fields" in node else None
    return holds, table, rows, row


# A key's text, the field rule it names (if any), and whether it is scanned itself.
_KeyInfo = tuple[str, str | None, bool]


def _key(k: Any, fields: frozenset[str]) -> _KeyInfo:
    """What the walk needs of a key: an API's documents repeat the same few keys, so
    what a short one says is kept across documents (a long one is more likely data)."""
    if type(k) is str and len(k) < _KEY_PLAIN_MAX:
        return _short_key(k, fields)
    return _key_info(k, fields)


def _key_info(k: Any, fields: frozenset[str]) -> _KeyInfo:
    text = str(k)
    scanned = type(k) is str and (len(k) >= _KEY_PLAIN_MAX or _KEY_DATA_HINT.search(k) is not None)
    return text, _rule(normalise_field(text), fields), scanned


_short_key = lru_cache(maxsize=4096)(_key_info)


def _rule(name: str, fields: frozenset[str]) -> str | None:
    """The field rule a normalised key falls under (`*`: a derived rule naming all)."""
    return name if name in fields else DERIVED_ALL if DERIVED_ALL in fields else None


def _part(k: Any, t: type, table: tuple[str, _Names] | None, rows: _Names | None
          ) -> _Part | None:
    """The table part a container at `k` is: a table's list of rows, or one of its rows."""
    if table is not None and k == table[0]:
        return "rows", table[1]
    if rows is not None and t is list:
        return "row", rows
    return None


def _scanned_text(value: Any, t: type, rule: str | None, key: str) -> str | None:
    """A non-string scalar's text to scan, or None when it passes: any but null under a
    field rule; else a number without a fraction, as its digits, of 9 digits or more, or
    of 7 or more under a phone key (`{"msisdn": 41141707}`), or any positive integer
    under a postcode's or a birth date's key (`{"zip": 94105}`, `{"dob": 19900512}`)."""
    if rule is not None and value is not None:
        return _scalar_text(value)
    if t is not int and t is not float:
        return None
    if -_PHONE_SHORTEST < value < _PHONE_SHORTEST:  # most numbers: counts, amounts, ids
        return str(value) if t is int and value > 0 and people.number_key(key) else None
    if -_BIG < value < _BIG and not (phone_context.phone_key(key) or people.number_key(key)):
        return None
    if t is int:
        return str(value)
    return str(int(value)) if value.is_integer() else None  # 4.111111111111111e15


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
