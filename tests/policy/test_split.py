"""The decision's split (extproc/policy/split.py, docs/policies.md "Cached and live").

The proof that splitting the default pack changed nothing: on every corpus input, and
on those inputs mutated (another protocol, a reading missing, null or another case's,
another identity or activity), the cached part reads nothing its `reads` leaves out, the
live part nothing its `live_reads` leaves out, and the two combine to the pack's own
`data.tollgate.decision`. Then the mechanism: answers kept by projection, bounded and new
with every revision; half a split refused at load; `tollgate policy test` failing with the
path a `reads` list misses.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from extproc.policy import PolicyError, PolicyLoadError, split_check
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.policy.split import CACHE_ENTRIES, Kept, combine, parse_reads, project, steady
from tests.support import cli
from tests.support.corpus_inputs import inputs, mutated
from tests.support.packs import POLICIES

QUERY = "data.tollgate.decision"
ENGINE = EmbeddedEngine(read_modules(POLICIES), QUERY)


def sql_input() -> dict[str, Any]:
    """A corpus input of a PostgreSQL target's statements."""
    return next(i for i in inputs() if isinstance(i, dict) and i.get("sql")
                and (i.get("target") or {}).get("protocol") == "postgres"
                and i["sql"].get("statements"))


@pytest.mark.slow
def test_every_corpus_input_is_split_without_loss() -> None:
    cases = [(str(n), i) for n, i in enumerate(inputs()) if isinstance(i, dict)]
    assert len(cases) > 800
    assert split_check.problems(ENGINE, cases) == []


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=mutated())
def test_mutated_inputs_are_split_without_loss(value: Any) -> None:
    if isinstance(value, dict):
        assert split_check.problems(ENGINE, [("mutated", value)]) == []


def test_the_shipped_inputs_cover_every_protocol_and_pass() -> None:
    inputs = split_check.shipped_inputs()
    protocols = {(v.get("target") or {}).get("protocol") for _, v in inputs}
    assert {"http", "sql-http", "k8s", "llm", "mcp", "postgres", "mysql", "ssh"} <= protocols
    assert any(v.get("egress") for _, v in inputs)
    assert split_check.problems(ENGINE, inputs) == []


def test_statements_alike_but_for_their_text_share_one_cached_answer() -> None:
    engine = EmbeddedEngine(read_modules(POLICIES), QUERY)
    assert engine.split is not None
    first = json.loads(json.dumps(sql_input()))
    second = json.loads(json.dumps(sql_input()))
    for value, n in ((first, 1), (second, 2)):
        value["sql"]["statements"][0]["text"] += f" -- {n}"
        value["request"]["body"] = f"another body {n}"
        value["identity"]["jti"] = f"token-{n}"
    decisions = [engine.decide_now(json.dumps(v)) for v in (first, second)]
    assert decisions[0] == decisions[1]
    assert len(engine.split.answers) == 1


def test_statements_alike_but_for_their_text_share_one_live_answer_too() -> None:
    """Nothing of the live part reads a statement's text (VACUUM ANALYZE is the reader's
    nested analyze, judged by the cached part): the same identity's statements that
    differ by a literal, with the counts standing still, are decided by one evaluation of
    each part."""
    engine = EmbeddedEngine(read_modules(POLICIES), QUERY)
    assert engine.split is not None
    texts = ("SELECT abalance FROM pgbench_accounts WHERE aid = 4123",
             "SELECT abalance FROM pgbench_accounts WHERE aid = 77")
    for text in texts:
        value = json.loads(json.dumps(sql_input()))
        value["sql"]["statements"][0]["text"] = value["request"]["body"] = text
        engine.decide_now(json.dumps(value))
    assert (len(engine.split.answers), len(engine.split.lives)) == (1, 1)


def test_kept_answers_are_bounded_and_new_with_every_revision() -> None:
    kept = Kept()
    for n in range(CACHE_ENTRIES + 5):
        kept.put(str(n), "{}")
    assert len(kept) == CACHE_ENTRIES
    assert kept.get("0") is None and kept.get("5") == "{}"
    kept.put("new", "{}")  # the least recently used goes: 6, not 5 (just read)
    assert kept.get("5") == "{}" and kept.get("6") is None

    engine = EmbeddedEngine(read_modules(POLICIES), QUERY)
    engine.decide_now(json.dumps(sql_input()))
    assert engine.split is not None
    assert (len(engine.split.answers), len(engine.split.lives)) == (1, 1)
    asyncio.run(engine.load(read_modules(POLICIES)))
    assert engine.split is not None
    assert (len(engine.split.answers), len(engine.split.lives)) == (0, 0)


def test_the_live_part_is_kept_only_where_no_builtin_changes_by_itself() -> None:
    """Its answer is a function of its input unless the pack asks the clock, chance or
    the network: then it is evaluated every time."""
    assert steady(source for _, source in read_modules(POLICIES))
    for call in ("time.now_ns()", "rand.intn(\"x\", 2)", "http.send(r)", "opa.runtime()"):
        assert not steady([f"package p\nx := {call}\n"])
    modules = [*read_modules(POLICIES),
               ("clock.rego", "package tollgate\nimport rego.v1\nnow := time.now_ns()\n")]
    engine = EmbeddedEngine(modules, QUERY)
    assert engine.split is not None and not engine.split.steady
    for _ in range(2):
        engine.decide_now(json.dumps(sql_input()))
    assert (len(engine.split.answers), len(engine.split.lives)) == (1, 0)


def test_the_projection_keeps_only_what_reads_name() -> None:
    tree = parse_reads(["a.b", "c[*].d", "h.x-*"], "data.tollgate.reads")
    value = {"a": {"b": 1, "z": 2}, "c": [{"d": 1, "e": 2}, {"e": 3}], "z": 1,
             "h": {"X-One": 1, "x-two": 2, "y": 3}}
    assert project(value, tree) == {"a": {"b": 1}, "c": [{"d": 1}, {}],
                                    "h": {"X-One": 1, "x-two": 2}}
    # A value of another shape than the path expects is kept whole: an object where an
    # array's elements were named (Rego's `some x in` iterates its values alike).
    assert project({"a": "text", "c": None}, tree) == {"a": "text", "c": None}
    assert project({"c": {"x": {"d": 1, "e": 2}}}, tree) == {"c": {"x": {"d": 1, "e": 2}}}
    assert project({"a": [{"b": 1}]}, tree) == {"a": [{"b": 1}]}


@pytest.mark.parametrize(("reads", "error"), [
    ('"target"', "must be a list of input paths"),
    ('["target", "a..b"]', "'a..b' is not an input path"),
    ('["a*.b"]', "'a*.b' is not an input path"),
    ('["activity.status"]', "the cached part reads neither activity"),
])
def test_a_bad_reads_list_is_refused_at_load(reads: str, error: str) -> None:
    modules = [(p, s) for p, s in read_modules(POLICIES)]
    modules.append(("bad.rego", f"package tollgate\nbad_reads := {reads}\n"))
    modules = [(p, s.replace("\nreads := [", "\nreads_was := [")) for p, s in modules]
    modules.append(("reads.rego", "package tollgate\nreads := bad_reads\n"))
    with pytest.raises(PolicyLoadError, match=re.escape(error)):
        EmbeddedEngine(modules, QUERY)


def test_half_a_split_is_refused_and_none_decides_as_before() -> None:
    half = [("p.rego", "package tollgate\nimport rego.v1\n"
             "decision := {\"action\": \"allow\"}\ncached := decision\n")]
    with pytest.raises(PolicyLoadError, match=re.escape("live, data.tollgate.reads not defined")):
        EmbeddedEngine(half, QUERY)
    whole = [("p.rego", "package tollgate\nimport rego.v1\n"
              "decision := {\"action\": \"deny\", \"reasons\": [\"no\"]}\n")]
    engine = EmbeddedEngine(whole, QUERY)
    assert engine.split is None
    assert engine.decide_now("{}").reasons == ("no",)


def test_the_parts_combine_by_the_documented_rule() -> None:
    def text(**part: Any) -> str:
        return orjson.dumps(part).decode()

    mask = {"detectors": ["all"], "strategy": "redact"}
    allow = text(action="allow", reasons=[], rules=[], mask=mask, database_role="reader")
    hold = text(action="hold", reasons=["b"], rules=["r.b"], approvers=["group:dba"],
                hold_seconds=300)
    held = combine(allow, hold)
    assert (held.action, held.reasons, held.approvers, held.hold_seconds) == (
        "hold", ("b",), ("group:dba",), 300)
    assert held.mask == {"detectors": ("all",), "strategy": ("redact",)}
    assert held.database_role == "reader"
    deny = text(action="deny", reasons=["a"], rules=["r.a"], status=429)
    denied = combine(text(action="hold", reasons=["c"], rules=["r.c"], approvers=["x"],
                          hold_seconds=60, mask=mask), deny)
    assert (denied.action, denied.reasons, denied.rules, denied.status) == (
        "deny", ("a",), ("r.a",), 429)
    assert denied.mask == {} and denied.approvers == ()
    # Both deny: the lowest status (a cached 403 on the merits over a live 429 or 503).
    merits = text(action="deny", reasons=["m"], rules=["r.m"])
    assert combine(merits, deny).status == 403
    assert combine(text(action="deny", status=503), deny).status == 429
    with pytest.raises(PolicyError, match="status"):
        combine(text(action="deny", status="429"), deny)
    both = combine(text(action="hold", reasons=["z"], rules=["r"], approvers=["y"],
                        hold_seconds=60), text(action="hold", reasons=["a"], rules=["r"],
                                               approvers=["x", "y"], hold_seconds=30))
    assert (both.reasons, both.rules, both.approvers, both.hold_seconds) == (
        ("a", "z"), ("r",), ("x", "y"), 30)
    assert both.approvals_needed == 1
    two = combine(text(action="hold", approvers=["x"], approvals_needed=2),
                  text(action="hold", approvers=["x"]))
    assert two.approvals_needed == 2  # the part that needs the most
    with pytest.raises(PolicyError, match="approvals_needed"):
        combine(text(action="hold", approvers=["x"], approvals_needed="2"),
                text(action="hold", approvers=["x"], approvals_needed=3))
    # Moderated when either part asks; a deny is nobody's to moderate.
    assert combine(text(action="allow", moderated=True), text(action="allow")).moderated
    assert combine(text(action="allow"), text(action="hold", approvers=["x"],
                                              moderated=True)).moderated
    assert not combine(text(action="allow"), text(action="allow")).moderated
    assert not combine(text(action="allow", moderated=True), text(action="deny")).moderated
    with pytest.raises(PolicyError, match="moderated"):
        combine(text(action="allow", moderated="yes"), text(action="allow"))
    alerts = combine(text(action="allow", alerts=[{"rule": "b", "severity": "info",
                                                   "message": "m"}]),
                     text(action="allow", alerts=[{"rule": "a", "severity": "info",
                                                   "message": "m", "key": "k"}]))
    assert [a.rule for a in alerts.alerts] == ["a", "b"]  # objects with `key` sort first
    with pytest.raises(PolicyError, match="the live part must be an object"):
        combine(allow, text(action="permit"))


@pytest.mark.slow
def test_policy_test_names_the_path_a_reads_list_misses(tmp_path: Path) -> None:
    pack = tmp_path / "policies"
    shutil.copytree(POLICIES, pack)
    source = (pack / "tollgate.rego").read_text()
    assert '\t"request.headers.impersonate-*",\n' in source
    (pack / "tollgate.rego").write_text(
        source.replace('\t"request.headers.impersonate-*",\n', ""))
    impersonating = next(i for i in inputs() if isinstance(i, dict) and any(
        h.lower().startswith("impersonate-")
        for h in ((i.get("request") or {}).get("headers") or {})))
    given = tmp_path / "impersonating.json"
    given.write_text(json.dumps(impersonating))
    result = cli.tollgate("policy", "test", str(pack), "--split-inputs", str(given))
    assert result.returncode == 1, result
    assert "data.tollgate.split: FAIL" in result.stdout
    assert "data.tollgate.reads misses input.request.headers.impersonate-" in result.stdout
    assert cli.tollgate("policy", "test", str(POLICIES), "--split-inputs",
                        str(given)).returncode == 0
