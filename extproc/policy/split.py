"""A decision in two parts: `cached`, on what it declares it reads, kept; `live`, every time.

A pack may split `data.tollgate.decision` (docs/policies.md, "Cached and live"):

- `data.tollgate.cached` decides on the input *projected* onto `data.tollgate.reads` (a
  list of paths such as `identity.groups` or `sql.statements[*].tables`). It never sees
  anything else, so its answer cannot depend on anything outside the projection, and the
  projection is the key its answer is kept under (`Split.answers`: bounded, least
  recently used first out, a new one for every policy revision).
- `data.tollgate.live` is evaluated on every exchange, on the input (projected onto
  `data.tollgate.live_reads` when the pack lists them) with the cached answer's outcome
  as `input.cached`: activity, time, what depends on the outcome. Where the pack calls
  no builtin whose answer changes by itself (`steady`), its answers are kept too, by
  their whole input.

`combine` is the one rule that makes a decision of the two, and the pack's own
`decision` must equal it on every input (tests/policy/test_split.py proves it for the
default pack; `tollgate policy test` checks that `reads` misses nothing on representative
inputs: split_check.py).
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc.codecs import jsonenc
from extproc.policy.decision import Decision, MalformedDecision
from extproc.policy.errors import PolicyError, PolicyLoadError

CACHE_ENTRIES = 4096
"""Cached answers kept per revision: a pack gives few distinct projections in steady
use (one per identity's groups, target and kind of statement), so this bounds memory
against inputs crafted to differ, not the hit rate of real traffic."""

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\[\*\]|\*)?")
# The parts of the input the cached part may never read: they change between two
# exchanges that are otherwise alike, so an answer kept on them would be stale.
_NEVER_CACHED = ("activity", "budget", "cached", "flow")

# Reads as a tree: a key maps to what is read under it (None: the whole value); an
# array's elements (a segment ending in `[*]`) are read alike, under the key "[*]"; a
# last segment ending in `*` reads every key that begins so, in any case (header names:
# `request.headers.impersonate-*`), under the key "prefix*".
Tree = dict[str, "Tree | None"]


def parse_reads(paths: Any, rule: str) -> Tree:
    """The tree of a pack's `reads` (or `live_reads`): a list of dotted paths, a segment
    ending in `[*]` for every element of an array, a last one ending in `*` for the keys
    that begin so. PolicyLoadError names a bad path."""
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise PolicyLoadError(f"{rule} must be a list of input paths (strings), "
                              f"got {orjson.dumps(paths).decode()[:200]}")
    tree: Tree = {}
    for path in paths:
        segments = path.split(".")
        if not path or not all(_SEGMENT.fullmatch(s) for s in segments) or any(
                s.endswith("*") and not s.endswith("[*]") for s in segments[:-1]):
            raise PolicyLoadError(f"{rule}: {path!r} is not an input path (dotted names, "
                                  "a name ending in [*] for every element of an array, "
                                  "the last one ending in * for the keys that begin so)")
        if rule.endswith(".reads") and segments[0].removesuffix("[*]") in _NEVER_CACHED:
            raise PolicyLoadError(f"{rule}: {path!r}: the cached part reads neither "
                                  "activity, budgets nor the cached answer; the live part does")
        add_path(tree, segments)
    return tree


def add_path(tree: Tree, segments: list[str]) -> None:
    """Read what `segments` name as well (a path of `reads`, split at its dots)."""
    node: Tree | None = tree
    for i, segment in enumerate(segments):
        assert node is not None
        name, each = (segment[:-3], True) if segment.endswith("[*]") else (
            segment.lower() if segment.endswith("*") else segment, False)
        last = i == len(segments) - 1
        if name in node and node[name] is None:
            return  # read whole already
        if last and not each:
            node[name] = None
            return
        child = node.setdefault(name, {})
        assert child is not None
        if each:
            if last:
                child["[*]"] = None
                return
            child = child.setdefault("[*]", {})
            assert child is not None
        node = child


def project(value: Any, tree: Tree) -> Any:
    """`value` with only what `tree` reads: keys it does not name are left out, arrays
    read element by element; a value of another shape than the path expects (an object
    where an array's elements were named, which Rego iterates alike, a string, a null)
    is kept whole, as the policy would see it."""
    each = "[*]" in tree
    if isinstance(value, list) and each:
        elements = tree["[*]"]
        return value if elements is None else [project(v, elements) for v in value]
    if isinstance(value, dict) and not each:
        out = {}
        for key, sub in tree.items():
            if key in value:
                out[key] = value[key] if sub is None else project(value[key], sub)
            elif key.endswith("*"):
                out.update((k, v) for k, v in value.items()
                           if k.lower().startswith(key[:-1]))
        return out
    return value


class Kept:
    """Answers kept by the input they were given, the least recently used first out."""

    def __init__(self) -> None:
        self._answers: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> str | None:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: str, answer: str) -> None:
        self._answers[key] = answer
        if len(self._answers) > CACHE_ENTRIES:
            self._answers.popitem(last=False)


# Builtins whose answer is not a function of their arguments: a pack that calls one
# anywhere has its live part evaluated every time.
_UNSTEADY = re.compile(r"\b(?:time\.now_ns|rand\.intn|uuid\.rfc4122|http\.send|opa\.runtime|"
                       r"net\.lookup_ip_addr|io\.jwt\.decode_verify)\b")


def steady(sources: Iterable[str]) -> bool:
    """Whether no source calls a builtin whose answer changes by itself (time, chance,
    the network): then the live part's answer is a function of its input, and kept."""
    return not any(_UNSTEADY.search(source) for source in sources)


@dataclass(slots=True)
class Split:
    """A pack's split, as loaded with one revision: what each part reads, the answers
    of its cached part kept by projection, and, where the pack is `steady`, those of its
    live part kept by their whole input (they are functions of it)."""

    reads: Tree
    live_reads: Tree | None
    steady: bool = True
    answers: Kept = field(default_factory=Kept, init=False)
    lives: Kept = field(default_factory=Kept, init=False)

    def key(self, value: dict[str, Any]) -> str:
        """The projected input, as the cached part is asked it and its answer kept."""
        return jsonenc.dumps(project(value, self.reads))

    def live_input(self, value: dict[str, Any], input_json: str, answer: str) -> str:
        """What the live part is asked: the input (projected, when the pack says what
        the live part reads) with the cached answer's action, reasons and rules as
        `input.cached` (what the outcome is; its mask and the rest are the cached part's
        to give)."""
        cached = outcome_of(answer)
        if self.live_reads is None:
            return f'{input_json[:-1]},"cached":{cached}}}'
        projected = jsonenc.dumps(project(value, self.live_reads))
        return f'{projected[:-1]}{"," if len(projected) > 2 else ""}"cached":{cached}}}'


@functools.lru_cache(maxsize=1024)
def outcome_of(answer: str) -> str:
    """`input.cached` of a cached answer (JSON text): its action, reasons and rules."""
    value = jsonenc.loads(answer)
    if not isinstance(value, dict):
        return "null"
    return jsonenc.dumps({k: value[k] for k in ("action", "reasons", "rules") if k in value})


# -- combining -------------------------------------------------------------------------------

_STRICTNESS = {"allow": 0, "hold": 1, "deny": 2}


@functools.lru_cache(maxsize=1024)
def combine(cached: str, live: str) -> Decision:
    """The decision of a cached and a live answer (JSON texts), by the documented rule:

    - the stricter action wins (deny, then hold, then allow);
    - reasons and rules are those of the parts that answered with the winning action,
      together, sorted (a rule named by both, once);
    - a deny's status is the lowest of the denying parts' (403 for one that names
      none, and then not named): a refusal on the merits is never told as one to retry;
    - a hold's approvers are the union of its parts', sorted; it waits as long as the
      shortest of theirs; it needs as many approvers as the part that needs the most;
      it grants a window only if every part that holds grants one, for the fewest
      minutes;
    - what passes (allow or hold) is masked as either part asks (each mask list is the
      cached part's, then what the live part adds), under the cached part's role and
      statement timeout unless only the live part names them; it is moderated when
      either part asks for a moderator;
    - alerts are both parts', sorted as Rego sorts objects.

    Cached by its two texts: a pack gives few distinct answers. A part that is not a
    decision raises PolicyError, naming the part."""
    parts = [_part(cached, "cached"), _part(live, "live")]
    action = max((p["action"] for p in parts), key=_STRICTNESS.__getitem__)
    winners = [p for p in parts if p["action"] == action]
    out: dict[str, Any] = {
        "action": action,
        "reasons": sorted(x for p in winners for x in _list(p, "reasons")),
        "rules": sorted({x for p in winners for x in _list(p, "rules")}),
    }
    if action == "deny":
        statuses = [p.get("status", _DENIED) for p in winners]
        # One that is no number is left for the decision's parse to refuse.
        status = min(statuses) if all(type(s) is int for s in statuses) else next(
            s for s in statuses if type(s) is not int)
        if status != _DENIED:
            out["status"] = status
    else:
        if action == "hold":
            out.update(_hold_terms(winners))
        masks = [p["mask"] for p in parts if isinstance(p.get("mask"), dict)]
        if masks:
            out["mask"] = _masks(masks)
        out.update(_first(parts, "database_role"), **_first(parts, "statement_timeout_seconds"),
                   **_first(parts, "inspect"))
        moderated = [p["moderated"] for p in parts if "moderated" in p]
        if moderated:  # either part's asking; one that is no boolean is left for parse
            odd = [m for m in moderated if type(m) is not bool]
            out["moderated"] = odd[0] if odd else any(moderated)
    alerts = [a for p in parts for a in _list(p, "alerts")]
    if alerts:
        out["alerts"] = sorted(alerts, key=_rego_order)
    try:
        return Decision.parse(out)
    except MalformedDecision as exc:
        raise PolicyError(f"malformed decision: {exc}") from None


def _hold_terms(holding: list[dict[str, Any]]) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "approvers": sorted({a for p in holding for a in _list(p, "approvers")})}
    seconds = [p["hold_seconds"] for p in holding if "hold_seconds" in p]
    if seconds:
        terms["hold_seconds"] = min(seconds)
    needed = [p["approvals_needed"] for p in holding if "approvals_needed" in p]
    if needed:  # the most any part needs; one that is no number is left for parse to refuse
        odd = [n for n in needed if type(n) is not int]
        terms["approvals_needed"] = odd[0] if odd else max(needed)
    if all(p.get("grant") == "window" for p in holding):
        terms.update(grant="window",
                     grant_minutes=min(p.get("grant_minutes", 0) for p in holding))
    return terms


_DENIED = 403  # a deny's status when it names none (tollgate.rego's with_status)


def _first(parts: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """`key` as the first part that names it gives it (the cached part before the live)."""
    return next(({key: p[key]} for p in parts if key in p), {})


def _part(text: str, name: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or value.get("action") not in _STRICTNESS:
        raise PolicyError(f"malformed decision: the {name} part must be an object with "
                          f"an action of allow, deny or hold, got {text[:200]}")
    return value


def _list(part: dict[str, Any], key: str) -> list[Any]:
    value = part.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"malformed decision: {key} must be a list, got {value!r}")
    return value


def _masks(masks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mask in masks:
        for key, value in mask.items():
            if key not in out:
                out[key] = list(value) if isinstance(value, list) else value
            elif isinstance(value, list) and isinstance(out[key], list):
                out[key] += [v for v in value if v not in out[key]]
    return out


def _rego_order(value: Any) -> Any:
    """A sort key that orders JSON objects of strings as Rego's `sort` does: by their
    (key, value) pairs in key order."""
    if isinstance(value, dict):
        return sorted((k, _rego_order(v)) for k, v in value.items())
    return value
