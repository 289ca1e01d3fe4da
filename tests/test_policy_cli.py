"""`tollgate policy test` and `tollgate policy eval`, run as a user runs them: a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extproc.policy import rego_tests
from extproc.policy_cli import go_duration

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
DURATION = r"\(\d+(\.\d+)?(ns|µs|ms|s)\)"

DROP_INPUT = {
    "phase": "request",
    "identity": {"authenticated": False},
    "target": {"name": "orders-sql", "protocol": "http", "environment": "prod", "labels": {}},
    "request": {
        "method": "POST", "path": "/query", "query": {},
        "headers": {"content-type": "application/json"}, "body": {"sql": "DROP TABLE users"},
    },
    "response": None, "sql": None, "k8s": None, "llm": None, "approval": None,
}
GET_INPUT = {
    **DROP_INPUT,
    "request": {"method": "GET", "path": "/api/customers", "query": {}, "headers": {},
                "body": None},
}


def tollgate(
    *args: str, cwd: Path = REPO, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc", "policy", *args], capture_output=True, text=True,
        cwd=cwd, input=stdin, timeout=60,
    )


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
    assert lines[-2:] == ["-" * 80, f"PASS: {len(tests)}/{len(tests)}"]
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
    assert re.search(r"^  destructive_sql +policies/tollgate\.rego:\d+  \[\"DROP\"\]$",
                     result.stdout, re.MULTILINE)
    assert re.search(r"^  sql_texts +policies/tollgate\.rego:\d+  \[\"DROP TABLE users\"\]$",
                     result.stdout, re.MULTILINE)
    assert "did not fire: masking_off" in lines
    assert result.stderr == ""


def test_eval_lists_rules_that_did_not_fire(tmp_path: Path) -> None:
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)))
    assert result.returncode == 0
    assert '"action": "allow"' in result.stdout
    assert "did not fire: denied_rules, denials, masking_off, sql_texts, destructive_sql" in (
        result.stdout.splitlines()
    )
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
    assert fired["data.tollgate.destructive_sql"] == ["DROP"]
    assert fired["data.tollgate.sql_texts"] == ["DROP TABLE users"]


def test_eval_explain_lists_the_lines_evaluated(tmp_path: Path) -> None:
    result = tollgate("eval", "-i", str(write_input(tmp_path, GET_INPUT)), "--explain")
    assert result.returncode == 0
    explained = result.stdout.split("lines evaluated for data.tollgate.decision", 1)[1]
    assert re.search(r"^  \+ +\d+  decision := \{\"action\": \"allow\"", explained, re.MULTILINE)
    assert re.search(r"^  - +\d+  denials contains \{\"rule\": \"sql.destructive\"", explained,
                     re.MULTILINE)
    as_json = tollgate("eval", "-i", str(tmp_path / "input.json"), "--explain", "-f", "json")
    (coverage,) = json.loads(as_json.stdout)["coverage"]
    assert coverage["path"] == "policies/tollgate.rego" and coverage["covered"]


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


def test_the_documented_worked_example_passes_its_tests(tmp_path: Path) -> None:
    """docs/policies.md's rule and tests, added to a copy of the pack, pass and decide."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    doc = (REPO / "docs" / "policies.md").read_text(encoding="utf-8")
    examples = re.findall(r"<!-- worked example: (\S+) -->\n```rego\n(.*?)```", doc, re.DOTALL)
    assert [name for name, _ in examples] == [
        "policies/tollgate_read_only.rego", "policies/tollgate_read_only_test.rego"
    ]
    for name, source in examples:
        (tmp_path / name).write_text(source)
    result = tollgate("test", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "data.tollgate_test.test_write_to_read_only_target_is_refused: PASS" in (
        result.stdout
    )
    request = {
        **GET_INPUT,
        "target": {"name": "reports", "protocol": "http", "environment": "prod",
                   "labels": {"access": "read-only"}},
        "request": {"method": "DELETE", "path": "/reports/7", "query": {}, "headers": {},
                    "body": None},
    }
    decided = tollgate("eval", "-i", str(write_input(tmp_path, request)), "-f", "json",
                       cwd=tmp_path)
    assert json.loads(decided.stdout)["decision"] == {
        "action": "deny", "status": 403, "rules": ["http.read_only"],
        "reasons": ["reports is read-only: DELETE is not allowed"],
    }
