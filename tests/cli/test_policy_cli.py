"""`tollgate policy test` and `tollgate policy eval`, run as a user runs them: a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from extproc.cli.policy import go_duration
from extproc.config import Sql
from extproc.interpret import Llm, SqlHttp
from extproc.policy import rego_tests
from tests.policy_corpus import MASK_ALL
from tests.support import cli
from tests.test_inert import ERASE, FORGED, raw

pytestmark = pytest.mark.e2e  # `tollgate policy` run from its command line (tests/support/cli.py)

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DURATION = r"\(\d+(\.\d+)?(ns|µs|ms|s)\)"

DROP_REQUEST = {
    "method": "POST", "path": "/query", "query": {},
    "headers": {"content-type": "application/json"}, "body": {"sql": "DROP TABLE users"},
}
# The pack decides SQL on input.sql: what the sql-http target's interpreter reads the
# request to mean, built here as the servicer builds it.
DECISION = Draft202012Validator(
    json.loads((REPO / "policies" / "decision.schema.json").read_text()))
DROP_INPUT = {
    "phase": "request",
    "identity": {"authenticated": False},
    "target": {"name": "orders-sql", "protocol": "sql-http", "environment": "prod", "labels": {}},
    "request": DROP_REQUEST,
    "response": None,
    "sql": SqlHttp(Sql()).request(DROP_REQUEST),
    "k8s": None, "llm": None, "mcp": None, "postgres": None, "approval": None,
}
GET_INPUT = {
    **DROP_INPUT,
    "target": {"name": "crm", "protocol": "http", "environment": "prod", "labels": {}},
    "request": {"method": "GET", "path": "/api/customers", "query": {}, "headers": {},
                "body": None},
    "sql": None,
}


def tollgate(
    *args: str, cwd: Path = REPO, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`tollgate policy ARGS` (in this process: tests/support/cli.py)."""
    return cli.tollgate("policy", *args, cwd=cwd, stdin=stdin or "")


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of an unusable-input exit, without the program name."""
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("tollgate: ")
    assert "Traceback" not in result.stderr
    return result.stderr.removeprefix("tollgate: ").rstrip("\n")


def pack(tmp_path: Path, policy: str, tests: str | None = None) -> Path:
    """A policy directory with one policy file and, optionally, its tests."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "p.rego").write_text(policy)
    if tests is not None:
        (directory / "p_test.rego").write_text(tests)
    return directory


def write_input(tmp_path: Path, value: object) -> Path:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(value))
    return path


P = "package p\nimport rego.v1\nx := 1\n"
TEST_HEAD = "package p_test\nimport rego.v1\nimport data.p\n"

# -- policy test ---------------------------------------------------------------------


def test_the_pack_passes_with_one_line_per_test() -> None:
    result = tollgate("test")  # DIR defaults to ./policies
    assert result.returncode == 0, result
    _, tests = rego_tests.load_engine(POLICIES)
    lines = result.stdout.splitlines()
    assert "policies/tollgate_test.rego:" in lines
    for test in tests:
        assert any(re.fullmatch(f"{re.escape(test.rule)}: PASS {DURATION}", ln) for ln in lines)
    # And the decision's split, checked as one more (tests/policy/test_split.py).
    assert any(re.fullmatch(f"data.tollgate.split: PASS {DURATION}", ln) for ln in lines)
    assert lines[-2:] == ["-" * 80, f"PASS: {len(tests) + 1}/{len(tests) + 1}"]
    assert result.stderr == ""


def test_a_failing_test_exits_1_saying_why(tmp_path: Path) -> None:
    directory = pack(tmp_path, P, TEST_HEAD + (
        "test_ok if p.x == 1\n"
        "test_undefined if p.x == 2\n"
        'test_value := {"b", "a"}\n'
    ))
    result = tollgate("test", str(directory))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{directory}/p_test.rego:"
    assert re.fullmatch(f"data.p_test.test_ok: PASS {DURATION}", lines[1])
    assert re.fullmatch(f"data.p_test.test_undefined: FAIL {DURATION}", lines[2])
    assert lines[3] == "  undefined"
    assert re.fullmatch(f"data.p_test.test_value: FAIL {DURATION}", lines[4])
    assert lines[5] == '  evaluated to ["a", "b"]'
    assert lines[-3:] == ["-" * 80, "PASS: 1/3", "FAIL: 2/3"]


def test_an_erroring_test_exits_1_with_its_error(tmp_path: Path) -> None:
    directory = pack(tmp_path, P, TEST_HEAD + "test_ok if p.x == 1\ntest_error if 1 / 0\n")
    result = tollgate("test", str(directory))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert re.fullmatch(f"data.p_test.test_error: ERROR {DURATION}", lines[2])
    assert lines[3] == f"  {directory}/p_test.rego:5:17: divide by zero"
    assert lines[-3:] == ["-" * 80, "PASS: 1/2", "ERROR: 1/2"]
    assert "Stack backtrace" not in result.stdout


def test_a_syntax_error_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    directory = pack(tmp_path, P, TEST_HEAD + "test_x if {\n")
    result = tollgate("test", str(directory))
    assert one_line(result) == (
        f"cannot compile policies: {directory}/p_test.rego:5:1: expecting expression"
    )
    assert result.stdout == ""


def test_print_output_is_shown_under_its_test(tmp_path: Path) -> None:
    directory = pack(tmp_path, P, TEST_HEAD + 'test_ok if {\n\tprint("x is", p.x)\n\tp.x == 1\n}\n')
    result = tollgate("test", str(directory))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert re.fullmatch(f"data.p_test.test_ok: PASS {DURATION}", lines[1])
    assert lines[2:5] == ["", f"  {directory}/p_test.rego:5: x is 1", ""]


def test_run_selects_tests_by_full_name(tmp_path: Path) -> None:
    directory = pack(tmp_path, P, TEST_HEAD + "test_a_ok if p.x == 1\ntest_b_bad if p.x == 2\n")
    result = tollgate("test", str(directory), "--run", r"^data\.p_test\.test_a")
    assert result.returncode == 0
    assert "test_a_ok: PASS" in result.stdout and "test_b_bad" not in result.stdout
    assert result.stdout.splitlines()[-1] == "PASS: 1/1"


def test_json_format_for_machines(tmp_path: Path) -> None:
    directory = pack(tmp_path, P, TEST_HEAD + (
        "test_ok if p.x == 1\ntest_bad if p.x == 2\ntest_error if 1 / 0\n"
    ))
    result = tollgate("test", str(directory), "--format", "json")
    assert result.returncode == 1
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert entries["test_ok"]["outcome"] == "PASS" and "fail" not in entries["test_ok"]
    assert entries["test_ok"]["location"] == {"file": f"{directory}/p_test.rego", "row": 4}
    assert entries["test_ok"]["package"] == "data.p_test"
    assert isinstance(entries["test_ok"]["duration"], int)
    assert (entries["test_bad"]["fail"], entries["test_bad"]["detail"]) == (True, "undefined")
    assert entries["test_error"]["error"]["message"].endswith("divide by zero")


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        (None, [], "{dir}: no such directory"),
        ({}, [], "no .rego files in {dir}"),
        ({"p.rego": P}, [], "no test_ rules in the *_test.rego files of {dir}"),
        ({"p.rego": P, "p_test.rego": TEST_HEAD + "test_x if p.x == 1\n"}, ["--run", "nomatch"],
         "no test in {dir} matches --run 'nomatch'"),
        ({"p.rego": P}, ["--run", "("], "--run '(': not a regular expression: "
         "missing ), unterminated subpattern at position 0"),
    ],
    ids=["missing-dir", "no-rego", "no-tests", "run-matches-none", "bad-regex"],
)
def test_nothing_to_run_exits_2_with_one_line(
    tmp_path: Path, files: dict[str, str] | None, args: list[str], expected: str
) -> None:
    directory = tmp_path / "policies"
    if files is not None:
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_text(text)
    assert one_line(tollgate("test", *args, str(directory))) == expected.format(dir=directory)


def test_durations_read_as_go_prints_them() -> None:
    assert [go_duration(ns) for ns in (812, 1_000, 41_200, 1_305_000, 2_000_000_000)] == [
        "812ns", "1µs", "41.2µs", "1.305ms", "2s"
    ]


# -- policy eval ---------------------------------------------------------------------


def did_not_fire(stdout: str) -> set[str]:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("did not fire: ")]
    return set(line.removeprefix("did not fire: ").split(", "))


def test_the_eval_inputs_are_inputs_the_servicer_sends() -> None:
    schema = Draft202012Validator(json.loads((POLICIES / "input.schema.json").read_text()))
    for policy_input in (DROP_INPUT, GET_INPUT):
        assert not [e.message for e in schema.iter_errors(policy_input)]
    assert [s["kind"] for s in DROP_INPUT["sql"]["statements"]] == ["drop"]


def test_eval_drop_table_is_denied_and_names_the_rules_that_fired(tmp_path: Path) -> None:
    result = tollgate("eval", "--input", str(write_input(tmp_path, DROP_INPUT)))
    assert result.returncode == 0, result
    assert result.stdout.startswith("data.tollgate.decision:\n{\n")
    decision = json.loads(result.stdout.split(":\n", 1)[1].split("\n\n", 1)[0])
    assert decision == {
        "action": "deny", "reasons": ["destructive SQL: DROP"], "rules": ["sql.destructive"]
    }
    lines = result.stdout.splitlines()
    assert "rules named by the decision: sql.destructive" in lines
    # `denials` is defined in every file of the pack: shown at its first definition.
    assert re.search(
        r'^  denials +policies/\w+\.rego:\d+  \[\{"reason": "destructive SQL: DROP", '
        r'"rule": "sql\.destructive"\}\]$', result.stdout, re.MULTILINE,
    )
    assert re.search(r'^  outcome_refused_by +policies/activity\.rego:\d+  \["sql\.destructive"\]$',
                     result.stdout, re.MULTILINE)
    assert re.search(r'^  sql_statements +policies/sql\.rego:\d+  \[\{.*"kind": "drop", ',
                     result.stdout, re.MULTILINE)
    assert {"holds", "live_holds", "outcome_held", "dba", "unmasked"} <= did_not_fire(
        result.stdout)
    assert result.stderr == ""


def test_eval_lists_rules_that_did_not_fire(tmp_path: Path) -> None:
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)))
    assert result.returncode == 0
    assert '"action": "allow"' in result.stdout
    quiet = did_not_fire(result.stdout)
    assert {
        "denials", "live_denials", "holds", "live_holds", "outcome_refused", "read_only_target",
        "sql_read", "k8s_read", "unmasked",
    } <= quiet
    assert not {"decision", "mask"} & quiet
    assert "rules named by the decision: (none)" in result.stdout.splitlines()


def test_eval_json_format_and_stdin() -> None:
    result = tollgate("eval", "--input", "-", "--format", "json", stdin=json.dumps(DROP_INPUT))
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["decision"] == {
        "action": "deny", "reasons": ["destructive SQL: DROP"], "rules": ["sql.destructive"],
        "status": 403,
    }
    assert report["policy_error"] is None and report["defined"] is True
    fired = {r["rule"]: r["value"] for r in report["rules"] if r["fired"]}
    assert fired["data.tollgate.denials"] == [
        {"reason": "destructive SQL: DROP", "rule": "sql.destructive"}
    ]
    assert fired["data.tollgate.outcome_refused_by"] == ["sql.destructive"]
    assert fired["data.tollgate.sql_statements"] == DROP_INPUT["sql"]["statements"]


def test_eval_json_writes_mask_and_hold_as_a_policy_writes_them() -> None:
    """The decision printed is one the decision schema accepts: a mask's strategy a
    string, a hold's approvers and wait shown."""
    allowed = tollgate("eval", "-i", "-", "-f", "json", stdin=json.dumps(GET_INPUT))
    assert json.loads(allowed.stdout)["decision"]["mask"] == MASK_ALL
    delete = {"method": "POST", "path": "/sql", "query": {}, "headers": {},
              "body": {"sql": "DELETE FROM customers"}}
    held = {**DROP_INPUT, "request": delete, "sql": SqlHttp(Sql()).request(delete)}
    decided = tollgate("eval", "-i", "-", "-f", "json", stdin=json.dumps(held))
    decision = json.loads(decided.stdout)["decision"]
    assert (decision["action"], decision["approvers"], decision["hold_seconds"]) == (
        "hold", ["group:dba"], 300)
    for value in (json.loads(allowed.stdout)["decision"], decision):
        assert not list(DECISION.iter_errors(value))


def line_of(path: Path, text: str) -> int:
    """The number of the one line of `path` that starts with `text`."""
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1)
                 if line.startswith(text)]
    return number


def test_eval_explain_lists_the_lines_evaluated(tmp_path: Path) -> None:
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)), "--explain")
    assert result.returncode == 0
    explained = result.stdout.split("lines evaluated for data.tollgate.decision", 1)[1]
    # One section per file of the pack with a rule the decision evaluates, each listing its
    # own lines (shell.rego holds only functions, which a GET to an http target never calls;
    # egress_lists.rego only the egress lists, which only an egress exchange reads;
    # credentials.rego the credential paths, which only a command or a path is matched to;
    # limits.rego the limits, which only tracked activity is held to; approvals.rego and
    # grants.rego the approvers and windows of each rule, which only a hold reads).
    sections = dict(re.findall(r"^(policies/\w+\.rego):\n((?:  .*\n?)*)", explained,
                               re.MULTILINE))
    pack = sorted(f"policies/{p.name}" for p in POLICIES.glob("*.rego")
                  if not p.name.endswith("_test.rego")
                  and p.name not in ("shell.rego", "egress_lists.rego", "credentials.rego",
                                     "limits.rego", "approvals.rego", "grants.rego"))
    assert sorted(sections) == pack
    # A GET to an http target: what passes was decided; no SQL rule produced a denial.
    assert re.search(r'^  \+ +\d+  passing\(true, d\) := with_moderator\(with_terms',
                     sections["policies/tollgate.rego"], re.MULTILINE)
    assert re.search(r'^  - +\d+  sql_denials contains \{"rule": "sql\.destructive"',
                     sections["policies/sql.rego"], re.MULTILINE)
    as_json = tollgate("eval", "-i", str(tmp_path / "input.json"), "--explain", "-f", "json")
    coverage = {c["path"]: c for c in json.loads(as_json.stdout)["coverage"]}
    assert sorted(coverage) == pack
    allow = line_of(POLICIES / "tollgate.rego", "passing(true, d) := with_moderator")
    assert allow in coverage["policies/tollgate.rego"]["covered"]
    destructive = line_of(POLICIES / "sql.rego", 'sql_denials contains {"rule": "sql.destructive"')
    assert destructive in coverage["policies/sql.rego"]["not_covered"]


def test_eval_shows_long_values_cut_and_helper_errors(tmp_path: Path) -> None:
    """A helper that errors is reported beside the decision, which it does not affect."""
    directory = pack(tmp_path, (
        "package tollgate\nimport rego.v1\n"
        'decision := {"action": "allow"}\n'
        'long := concat("", [x | some _ in numbers.range(1, 300); x := "a"])\n'
        "broken := 1 / 0 if input.request.method\n"
        'debug if print("not part of the report")\n'
    ))
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)), "-d", str(directory))
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert "not part of the report" not in result.stdout + result.stderr
    (long,) = [ln for ln in lines if ln.startswith("  long ")]
    assert long.endswith('"' + "a" * 199 + "… (whole with --format json)")
    assert f"error in broken ({directory}/p.rego:5): {directory}/p.rego:5:13: divide by zero" in (
        lines
    )
    assert "did not fire: (none)" in lines


def test_what_an_agent_sent_is_shown_inert_by_eval_and_test(tmp_path: Path) -> None:
    """A path that erases the terminal line and a bidi override, reflected by the policy
    into its reasons, a rule and a test's print: every listing shows them as escapes;
    --format json keeps them exact, as JSON escapes."""
    path = f"/api/{ERASE}{FORGED}/\u202etxt.exe"
    directory = pack(tmp_path, (
        "package tollgate\nimport rego.v1\n"
        'decision := {"action": "deny", "reasons": [input.request.path], "rules": ["t.x"]}\n'
        "echoed := input.request.path\n"
    ), "package t_test\nimport rego.v1\n"
       f"test_path if {{\n\tprint({json.dumps(path)})\n\tfalse\n}}\n")
    given = write_input(tmp_path, {**GET_INPUT, "request": {**GET_INPUT["request"],
                                                            "path": path}})
    shown = "/api/\\u001b[2K\\r" + FORGED + "/\\u202etxt.exe"

    result = tollgate("eval", "-i", str(given), "-d", str(directory))
    assert result.returncode == 0, result
    assert raw(result.stdout) == []
    assert f'"reasons": [\n    "{shown}"\n  ]' in result.stdout
    assert f'  echoed    {directory}/p.rego:4  "{shown}"' in result.stdout.splitlines()
    as_json = tollgate("eval", "-i", str(given), "-d", str(directory), "--format", "json")
    assert raw(as_json.stdout) == []
    assert json.loads(as_json.stdout)["decision"]["reasons"] == [path]

    tested = tollgate("test", str(directory))
    assert tested.returncode == 1
    assert raw(tested.stdout) == []
    printed = "/api/\\x1b[2K\\r" + FORGED + "/\\u202etxt.exe"  # as text, not JSON
    assert f"  {directory}/p_test.rego:4: {printed}" in tested.stdout.splitlines()


def test_eval_input_regorus_cannot_hold_exits_2() -> None:
    result = tollgate("eval", "-i", "-", stdin='{"n": 1e400}')
    assert one_line(result) == "<stdin>: number out of range at line 1 column 11"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"phase": ', "not valid JSON: Expecting value at line 1 column 11"),
        ("[1, 2]", "the policy input must be a JSON object, got list"),
        ('{"n": NaN}', "not valid JSON: NaN is not a JSON value"),
        (b"\xff{}", "not UTF-8 (byte 0)"),
    ],
    ids=["truncated", "not-an-object", "nan", "not-utf8"],
)
def test_eval_malformed_input_exits_2_with_one_line(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = tmp_path / "input.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = tollgate("eval", "--input", str(path))
    assert one_line(result) == f"{path}: {expected}"
    assert result.stdout == ""


def test_eval_missing_input_file_exits_2(tmp_path: Path) -> None:
    assert one_line(tollgate("eval", "-i", str(tmp_path / "nope.json"))) == (
        f"{tmp_path / 'nope.json'}: no such file"
    )


@pytest.mark.parametrize(
    ("decision", "cause"),
    [
        ('decision := {"action": "maybe", "rules": ["x"]}',
         "malformed decision: action must be one of allow, deny, hold, got 'maybe'"),
        ('decision := {"action": "deny", "status": 200}',
         "malformed decision: status must be an integer 400-599, got 200"),
        ('decision := {"action": "allow"} if input.nothing',
         "data.tollgate.decision is undefined for this input"),
    ],
    ids=["bad-action", "bad-status", "undefined"],
)
def test_eval_a_decision_the_gateway_refuses_exits_1_with_policy_error(
    tmp_path: Path, decision: str, cause: str
) -> None:
    directory = pack(tmp_path, f"package tollgate\nimport rego.v1\n{decision}\n")
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)), "-d", str(directory))
    assert result.returncode == 1
    assert f"\npolicy error: {cause}\n" in result.stdout
    refusal = result.stdout.split("the gateway refuses the request", 1)[1]
    assert json.loads(refusal[refusal.index("{"):refusal.index("}") + 1]) == {
        "action": "deny", "reasons": ["policy error"], "rules": ["tollgate.policy_error"],
        "status": 403,
    }
    assert result.stderr == f"tollgate: policy error: {cause} (the gateway refuses the request)\n"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('package tollgate\nimport rego.v1\ndecision := {"action": "allow", "n": 1 / 0}\n',
         "data.tollgate.decision: policy error: {file}:3:40: divide by zero"),
        ("package tollgate\nimport rego.v1\ndecision := {\n",
         "cannot compile policies: {file}:4:1: expecting expression"),
        ('package other\nimport rego.v1\ndecision := {"action": "allow"}\n',
         "data.tollgate.decision is not a rule in {dir} (packages: data.other)"),
    ],
    ids=["runtime-error", "syntax-error", "no-such-rule"],
)
def test_eval_policies_that_cannot_decide_exit_2(
    tmp_path: Path, policy: str, expected: str
) -> None:
    directory = pack(tmp_path, policy)
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)), "-d", str(directory))
    assert one_line(result) == expected.format(file=directory / "p.rego", dir=directory)


# -- the worked example of docs/policies.md --------------------------------------------


def chat_input(model: str) -> dict[str, object]:
    """An agent's chat completion to an llm target whose label lists two models."""
    request = {
        "method": "POST", "path": "/v1/chat/completions", "query": {},
        "headers": {"content-type": "application/json"},
        "body": {"model": model,
                 "messages": [{"role": "user", "content": "Summarise last week's incidents."}]},
    }
    return {
        **GET_INPUT,
        "identity": {"authenticated": True, "sub": "svc-autogen", "iss": "https://idp.example",
                     "aud": ["tollgate"], "email": None, "groups": ["agents"], "jti": "7f3c"},
        "target": {"name": "openai", "protocol": "llm", "environment": "prod",
                   "labels": {"models": "gpt-4o-mini, gpt-4o"}},
        "request": request,
        "llm": Llm().request(request),
    }


def test_the_documented_worked_example_passes_its_tests(tmp_path: Path) -> None:
    """docs/policies.md's rule and tests, added to a copy of the pack, pass and decide."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    doc = (REPO / "docs" / "policies.md").read_text(encoding="utf-8")
    examples = re.findall(r"<!-- worked example: (\S+) -->\n```rego\n(.*?)```", doc, re.DOTALL)
    assert [name for name, _ in examples] == [
        "policies/llm_models.rego", "policies/llm_models_test.rego"
    ]
    for name, source in examples:
        (tmp_path / name).write_text(source)
    result = tollgate("test", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert (
        "data.tollgate_models_test.test_agents_may_not_call_a_model_the_target_does_not_list: "
        "PASS"
    ) in result.stdout

    def decide(policy_input: dict[str, object]) -> dict[str, object]:
        decided = tollgate("eval", "-i", str(write_input(tmp_path, policy_input)), "-f", "json",
                           cwd=tmp_path)
        assert decided.returncode == 0, decided
        decision: dict[str, object] = json.loads(decided.stdout)["decision"]
        return decision

    assert decide(chat_input("o1")) == {
        "action": "deny", "status": 403, "rules": ["llm.model_not_allowed"],
        "reasons": ["model o1 is not allowed on openai"],
    }
    allowed = decide(chat_input("gpt-4o-mini"))
    assert (allowed["action"], allowed["rules"], allowed["reasons"]) == ("allow", [], [])
